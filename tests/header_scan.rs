//! The DATA-header scanner agrees with the full JSON parse: whenever it answers, the JSON parse
//! gives the same header, on headers in the plugin's exact layout (written by the simulator's
//! JUCE writer with generated fields) and on mutations of them (bytes flipped, inserted,
//! removed, the tail cut, a number's text replaced by any number-like text). On the unmutated
//! headers it must answer, unless a string needed a JSON escape. The receiver's path
//! (`parse_header_fast`: the scanner, else the JSON parse or the repair) gives what the JSON
//! parse gives, and says which way it went. `PROPTEST_CASES` raises the case count for a long
//! run. On the real GUI's bytes (`shared/fixtures`), every intact DATA header takes the scanner.

mod capkit;

use capkit::{fixture_json, fixture_records};
use oe_testkit::sim::juce_data_header;
use proptest::prelude::*;
use zmq2osc::ingest::protocol::{parse_header, parse_header_fast, Header, HeaderPath};
use zmq2osc::ingest::scan::scan_data_header;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

#[derive(Debug, Clone)]
struct Fields {
    message_num: i64,
    stream: String,
    channel_num: u32,
    channel_name: Option<String>,
    num_samples: usize,
    sample_num: i64,
    sample_rate: f64,
    timestamp: Option<i64>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_ -]{0,24}",
        1 => "\\PC{0,12}",                 // any printable Unicode
        1 => "[a-z\"\\\\/\\t\\n]{0,8}",    // needs JSON escapes
    ]
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        prop_oneof![4 => 1i64..100_000, 1 => any::<i32>().prop_map(i64::from), 1 => any::<i64>()],
        text(),
        any::<u32>(),
        proptest::option::of(text()),
        prop_oneof![4 => Just(696usize), 1 => 0usize..100_000],
        prop_oneof![3 => 0i64..10_000_000, 1 => any::<i64>()],
        prop_oneof![
            3 => Just(30000.0f64),
            1 => any::<f32>().prop_map(f64::from),
            1 => any::<f64>(),
            1 => (1u32..1_000_000).prop_map(f64::from),
        ],
        proptest::option::of(
            prop_oneof![3 => 1_700_000_000_000i64..1_800_000_000_000, 1 => any::<i64>()],
        ),
    )
        .prop_map(|(mn, s, ch, name, ns, sn, rate, ts)| Fields {
            message_num: mn,
            stream: s,
            channel_num: ch,
            channel_name: name,
            num_samples: ns,
            sample_num: sn,
            sample_rate: rate,
            timestamp: ts,
        })
}

fn header(f: &Fields) -> Vec<u8> {
    juce_data_header(
        f.message_num,
        &f.stream,
        f.channel_num,
        f.channel_name.as_deref(),
        f.num_samples,
        f.sample_num,
        f.sample_rate,
        f.timestamp,
    )
    .into_bytes()
}

/// The property: a scanned header is exactly what the JSON parse makes of the same bytes.
fn agree(bytes: &[u8]) -> Result<bool, TestCaseError> {
    match scan_data_header(bytes) {
        None => Ok(false),
        Some(s) => match parse_header(bytes) {
            Ok(Header::Data(j)) => {
                prop_assert_eq!(&s, &j, "bytes {:?}", String::from_utf8_lossy(bytes));
                Ok(true)
            }
            other => {
                prop_assert!(
                    false,
                    "scanner accepted what JSON rejects ({:?}): {:?}",
                    other,
                    String::from_utf8_lossy(bytes)
                );
                unreachable!()
            }
        },
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"0123456789-.eE+\"\\ \r\n{}:,abnul".to_vec()),
        1 => Just(b'-'),
        1 => any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Cut),
    ]
}

fn apply(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        if b.is_empty() {
            break;
        }
        match *m {
            Mutation::Flip(i, v) => {
                let i = i % b.len();
                b[i] = v;
            }
            Mutation::Insert(i, v) => {
                let i = i % (b.len() + 1);
                b.insert(i, v);
            }
            Mutation::Remove(i) => {
                let i = i % b.len();
                b.remove(i);
            }
            Mutation::Cut(i) => {
                let i = i % b.len();
                b.truncate(i);
            }
        }
    }
    b
}

/// The numeric keys of a DATA header.
const NUMBER_KEYS: [&str; 7] = [
    "message_num",
    "channel_num",
    "num_samples",
    "sample_num",
    "sample_rate",
    "data_size",
    "timestamp",
];

/// Number-like text: every length of integer part (the scanner reads up to 8 digits per word,
/// 15 in two), signs, leading zeros, fractions, exponents, and the pieces alone.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[1-9][0-9]{0,18}",
        2 => "-?[0-9]{0,20}(\\.[0-9]{0,4})?([eE][+-]?[0-9]{0,4})?",
        1 => "[0-9]{1,8}\\.0",
        1 => "[-+.eE0-9]{0,6}",
    ]
}

/// `b` with the value of `"key": ` (up to the next `,` or CR) replaced by `text`, if the key is
/// there.
fn replace_number(b: &[u8], key: &str, text: &str) -> Vec<u8> {
    let pat = format!("\"{key}\": ");
    let Some(at) = b.windows(pat.len()).position(|w| w == pat.as_bytes()) else {
        return b.to_vec();
    };
    let start = at + pat.len();
    let end = b[start..]
        .iter()
        .position(|&c| c == b',' || c == b'\r')
        .map_or(b.len(), |k| start + k);
    [&b[..start], text.as_bytes(), &b[end..]].concat()
}

/// The receiver's path on `bytes` (in a buffer with one spare byte, as the receiver's): the
/// same answer as the JSON parse when it scans or parses; a repair (and the repair's own error)
/// only for a text that does not end in `}`, i.e. that may have been cut.
fn receiver_path_agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = bytes.to_vec();
    buf.push(0);
    let json = parse_header(bytes);
    let end = bytes.iter().rposition(|&c| c != 0).map_or(0, |k| k + 1);
    let intact = bytes[..end].last() == Some(&b'}');
    let text = String::from_utf8_lossy(bytes);
    match parse_header_fast(&mut buf, bytes.len()) {
        Ok((h, HeaderPath::Scanned)) => {
            prop_assert!(matches!(h, Header::Data(_)), "{}", text);
            prop_assert_eq!(Ok(h), json, "{}", text);
        }
        Ok((h, HeaderPath::Parsed)) => prop_assert_eq!(Ok(h), json, "{}", text),
        Ok((_, HeaderPath::Repaired)) => prop_assert!(!intact, "repaired: {}", text),
        Err(e) if intact => prop_assert_eq!(Err(e), json, "{}", text),
        Err(_) => {} // a repair was tried: its error is the repaired text's
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn scanner_answers_exactly_like_the_json_parse_on_plugin_headers(f in fields()) {
        let b = header(&f);
        let scanned = agree(&b)?;
        let needs_escape = |s: &str| s.chars().any(|c| c == '"' || c == '\\' || (c as u32) < 0x20);
        let plain = !needs_escape(&f.stream)
            && !f.channel_name.as_deref().is_some_and(needs_escape)
            && f.sample_rate.is_finite();
        // The plugin's own layout with plain strings and a finite rate is always scanned.
        prop_assert_eq!(scanned, plain, "{}", String::from_utf8_lossy(&b));
    }

    #[test]
    fn scanner_never_disagrees_on_mutated_headers(
        f in fields(),
        ms in proptest::collection::vec(mutation(), 1..4),
    ) {
        let b = apply(header(&f), &ms);
        agree(&b)?;
    }

    #[test]
    fn scanner_never_disagrees_on_any_number_text(
        f in fields(),
        key in prop::sample::select(NUMBER_KEYS.to_vec()),
        text in number_text(),
    ) {
        let b = replace_number(&header(&f), key, &text);
        agree(&b)?;
        receiver_path_agrees(&b)?;
    }

    #[test]
    fn receiver_path_answers_like_the_json_parse(
        f in fields(),
        ms in proptest::collection::vec(mutation(), 0..3),
    ) {
        receiver_path_agrees(&apply(header(&f), &ms))?;
    }
}

/// The real GUI's headers (every capture in `shared/fixtures`) on the receiver's path: every
/// DATA header with intact JSON is scanned, to the header the JSON parse gives; the ones cut by
/// the non-ASCII length bug are repaired; only events take the JSON parse.
#[test]
fn real_gui_data_headers_take_the_scanner() {
    for name in [
        "gui-32ch-start-stop",
        "gui-16ch-loop-restart",
        "gui-8ch-nonascii",
        "gui-128ch",
    ] {
        let j = fixture_json(name);
        let (mut scanned, mut parsed, mut repaired) = (0u64, 0u64, 0u64);
        for r in fixture_records(name) {
            let bytes = &r.frames[1];
            let text = String::from_utf8_lossy(bytes);
            let mut buf = bytes.clone();
            buf.push(0);
            let (h, path) = parse_header_fast(&mut buf, bytes.len())
                .unwrap_or_else(|e| panic!("{name}: {e:?}: {text}"));
            match path {
                HeaderPath::Scanned => {
                    scanned += 1;
                    assert_eq!(Ok(h), parse_header(bytes), "{name}: {text}");
                }
                HeaderPath::Parsed => {
                    parsed += 1;
                    assert!(matches!(h, Header::Event(_)), "{name}: not scanned: {text}");
                }
                HeaderPath::Repaired => repaired += 1,
            }
        }
        let count = |k: &str| j[k].as_u64().unwrap();
        let invalid = count("invalid_json_data_headers");
        assert_eq!(
            (scanned, parsed, repaired),
            (
                count("data_messages") - invalid,
                count("event_messages"),
                invalid
            ),
            "{name}"
        );
    }
}
