//! Property tests of the parser and the assembler on hostile input.
//!
//! CI runs a small number of cases. For a long run, set PROPTEST_CASES, for example
//! `PROPTEST_CASES=1000000 cargo test --release --test fuzz`.
//!
//! Invariants: nothing panics; no frame is lost from the pool; every block the assembler
//! started is accounted for exactly once; every emitted frame holds exactly the samples that
//! were sent for its channels and block.

use oe_testkit::sim::juce_data_header;
use proptest::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zmq2osc::frame::Frame;
use zmq2osc::ingest::assembler::{Assembler, AssemblerConfig, FrameIo};
use zmq2osc::ingest::protocol::{parse_header, parse_header_mut, parse_ttl, DataHeader, Header};

const MAX_CH: usize = 16;
const MAX_NS: usize = 64;
const POOL: usize = 6;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// The value a test publisher sends for channel `ch`, block `key`, sample `j`.
fn value(ch: u32, key: i64, j: usize) -> f32 {
    ((ch as i64 * 7919 + key * 31 + j as i64) % 1_000_003) as f32
}

#[derive(Debug, Clone)]
enum Op {
    /// A data message; `len_delta` ≠ 0 makes the payload the wrong length.
    Data {
        mn_step: i64,
        ch: i64,
        key_index: usize,
        ns: i64,
        len_delta: i64,
        stream: u8,
        rate: u8,
        extra_frame: bool,
    },
    /// Time passes (deadlines, data timeout).
    Wait(u64),
    /// A header with no payload frame.
    Abort,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            prop_oneof![4 => Just(1i64), 1 => -3i64..5, 1 => Just(-1_000_000)],
            prop_oneof![8 => 0i64..6, 1 => -2i64..(MAX_CH as i64 + 3)],
            0usize..5,
            prop_oneof![6 => Just(8i64), 1 => -1i64..(MAX_NS as i64 + 3)],
            prop_oneof![8 => Just(0i64), 1 => -5i64..5],
            prop_oneof![9 => Just(0u8), 1 => 0u8..2],
            prop_oneof![9 => Just(0u8), 1 => 0u8..3],
            prop::bool::weighted(0.05),
        )
            .prop_map(|(mn_step, ch, key_index, ns, len_delta, stream, rate, extra_frame)| Op::Data {
                mn_step,
                ch,
                key_index,
                ns,
                len_delta,
                stream,
                rate,
                extra_frame
            }),
        1 => (0u64..3000).prop_map(Op::Wait),
        1 => Just(Op::Abort),
    ]
}

struct Io {
    free: Vec<Arc<Frame>>,
    emitted: Vec<Arc<Frame>>,
}

impl FrameIo for Io {
    fn take(&mut self) -> Option<Arc<Frame>> {
        self.free.pop()
    }
    fn give(&mut self, frame: Arc<Frame>) {
        self.free.push(frame)
    }
    fn emit(&mut self, frame: Arc<Frame>) {
        self.emitted.push(frame)
    }
}

/// Checks the frames emitted so far, then recycles them (the shard's part). With a fill
/// policy a row may instead be all NaN (`nan`) or one repeated value (`hold`).
fn check_and_recycle(io: &mut Io, filled_ok: bool) -> Result<(), TestCaseError> {
    for f in io.emitted.drain(..) {
        prop_assert!(
            f.channels.windows(2).all(|w| w[0] < w[1]),
            "channels not ascending"
        );
        prop_assert!(!f.channels.is_empty());
        prop_assert!(f.num_samples >= 1 && f.num_samples <= MAX_NS);
        for &c in &f.channels {
            prop_assert!((c as usize) < MAX_CH);
            let row = f.row(c);
            if filled_ok
                && (row.iter().all(|v| v.is_nan())
                    || row.iter().all(|v| v.to_bits() == row[0].to_bits()))
            {
                continue;
            }
            for j in 0..f.num_samples {
                prop_assert_eq!(
                    f.sample(c, j),
                    value(c, f.sample_num, j),
                    "ch {} block {}",
                    c,
                    f.sample_num
                );
            }
        }
        io.free.push(f);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn header_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_header(&bytes);
        let _ = parse_ttl(&bytes);
    }

    #[test]
    fn header_parser_never_panics_on_mutated_headers(
        cut in 0usize..300,
        flips in prop::collection::vec((0usize..300, any::<u8>()), 0..6),
        num in prop::num::i64::ANY,
    ) {
        let text = juce_data_header(num, "example_data", 3, Some("CH4"), 696, num, 30000.0, Some(num));
        let mut b = text.into_bytes();
        for (i, v) in flips {
            if let Some(x) = b.get_mut(i) {
                *x = v;
            }
        }
        b.truncate(cut.max(1).min(b.len()));
        let _ = parse_header(&b);
    }

    #[test]
    fn assembler_survives_hostile_sequences_and_keeps_its_books(
        ops in prop::collection::vec(op(), 1..250),
        policy in 0u8..3,
    ) {
        let missing = match policy {
            0 => zmq2osc::config::MissingChannelPolicy::Skip,
            1 => zmq2osc::config::MissingChannelPolicy::Nan,
            _ => zmq2osc::config::MissingChannelPolicy::Hold,
        };
        let filled_ok = policy != 0;
        let cfg = AssemblerConfig {
            max_channels: MAX_CH,
            max_block_samples: MAX_NS,
            min_deadline: Duration::from_millis(10),
            data_timeout: Duration::from_secs(2),
            auto_reinit: true,
            missing,
        };
        let mut asm = Assembler::new(cfg);
        let mut io = Io { free: (0..POOL).map(|_| Arc::new(Frame::new(MAX_CH, MAX_NS))).collect(), emitted: Vec::new() };
        let streams = ["example_data", "other"];
        let rates = [30000.0, 40000.0, f64::NAN];
        let keys = [0i64, 8, 16, 24, 4];
        let mut now = Instant::now();
        let mut mn = 0i64;
        let mut buf = vec![0u8; MAX_NS * 4 + 64];
        for op in ops {
            match op {
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    asm.poll(now, &mut io);
                }
                Op::Abort => {
                    let h = DataHeader {
                        message_num: Some(mn), stream: Cow::Borrowed("example_data"), channel_num: 0,
                        channel_name: None, num_samples: 8, sample_num: 0, sample_rate: 30000.0,
                        data_size: None, timestamp: None,
                    };
                    if asm.begin_data(&h, now, &mut io).is_ok() {
                        asm.abort_data();
                    }
                }
                Op::Data { mn_step, ch, key_index, ns, len_delta, stream, rate, extra_frame } => {
                    mn = mn.saturating_add(mn_step);
                    let key = keys[key_index];
                    let h = DataHeader {
                        message_num: Some(mn),
                        stream: Cow::Borrowed(streams[stream as usize]),
                        channel_num: ch,
                        channel_name: None,
                        num_samples: ns,
                        sample_num: key,
                        sample_rate: rates[rate as usize],
                        data_size: Some(ns * 4),
                        timestamp: Some(1),
                    };
                    asm.observe_message_num(h.message_num, now, &mut io);
                    // Like zmq recv_into: write min(len, room) bytes, report the real length.
                    let real_len = (ns.max(0) * 4 + len_delta).max(0) as usize;
                    for (j, chunk) in buf[..real_len.min(MAX_NS * 4 + 64)].chunks_mut(4).enumerate() {
                        let v = value(ch.max(0) as u32, key, j).to_le_bytes();
                        chunk.copy_from_slice(&v[..chunk.len()]);
                    }
                    if let Ok(row) = asm.begin_data(&h, now, &mut io) {
                        let n = real_len.min(row.len());
                        row[..n].copy_from_slice(&buf[..n]);
                        let _ = asm.end_data(real_len, extra_frame, now, &mut io);
                    }
                }
            }
            // Books: every frame is somewhere, every block started is accounted for once.
            let c = &asm.counters;
            let open = u64::from(asm.has_open_block());
            let held = asm.held_blocks() as u64;
            prop_assert_eq!(
                c.blocks_opened,
                c.blocks_emitted + c.blocks_incomplete + c.blocks_incomplete_upstream
                    + c.blocks_learning + c.blocks_no_frame + open + held
            );
            prop_assert!(c.blocks_held_late <= c.blocks_emitted);
            check_and_recycle(&mut io, filled_ok)?;
            prop_assert_eq!(io.free.len() + (open + held) as usize, POOL);
        }
        asm.flush(&mut io);
        check_and_recycle(&mut io, filled_ok)?;
        prop_assert_eq!(io.free.len(), POOL);
        prop_assert!(!asm.has_open_block());
        prop_assert_eq!(asm.held_blocks(), 0);
    }

    /// The GUI's non-ASCII length bug: a header sized in characters is cut by k bytes,
    /// k = 1..=(UTF-8 bytes − characters), as long as `content` survives. It repairs to the same fields (a `data_size` or
    /// `timestamp` cut mid-way is dropped, never misread).
    #[test]
    fn header_cut_by_the_utf8_excess_repairs_to_the_same_fields(
        name in prop::collection::vec(prop_oneof![Just('α'), Just('—'), Just('通'), Just('µ'), Just('x'), Just('7'), Just('😀')], 1..24),
        stream_uni in prop::bool::ANY,
        ch in 0u32..1024,
        ns in 1usize..4096,
        sample_num in 0i64..i64::MAX / 2,
        mn in 1i64..i32::MAX as i64,
        ts in prop::option::of(0i64..i64::MAX / 2),
        k_pick in any::<prop::sample::Index>(),
    ) {
        let name: String = name.into_iter().collect();
        let stream = if stream_uni { "Rhythm Ω" } else { "example_data" };
        let text = juce_data_header(mn, stream, ch, Some(&name), ns, sample_num, 30000.0, ts);
        let excess = text.len() - text.chars().count();
        prop_assume!(excess > 0);
        // The bridge's fields all sit in `content`: a cut that reaches into it (an excess
        // longer than the `data_size`/`timestamp` tail) leaves nothing to repair (the other
        // property shows it stays malformed).
        let content_end = text.find("\r\n  },").unwrap() + 5;
        let k = 1 + k_pick.index(excess.min(text.len() - content_end - 1));
        let mut buf = text.as_bytes()[..text.len() - k].to_vec();
        let len = buf.len();
        buf.resize(len + 16, 0);
        let (h, repaired) = parse_header_mut(&mut buf, len).map_err(|e| TestCaseError::fail(format!("{e:?} k={k} {text:?}")))?;
        prop_assert!(repaired);
        let Header::Data(d) = h else { return Err(TestCaseError::fail("not data")) };
        prop_assert_eq!(d.message_num, Some(mn));
        prop_assert_eq!(&*d.stream, stream);
        prop_assert_eq!(d.channel_num, i64::from(ch));
        prop_assert_eq!(d.channel_name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(d.num_samples, ns as i64);
        prop_assert_eq!(d.sample_num, sample_num);
        prop_assert_eq!(d.sample_rate, 30000.0);
        prop_assert!(d.data_size.is_none() || d.data_size == Some(ns as i64 * 4));
        prop_assert!(d.timestamp.is_none() || d.timestamp == ts);
    }

    /// Every other damage stays malformed: a pure-ASCII header cut (no excess, so not this
    /// bug), a non-ASCII header cut into its `content`, or cut further than its excess allows.
    #[test]
    fn other_header_damage_stays_malformed(
        ascii in prop::bool::ANY,
        cut in 1usize..400,
        ns in 1usize..4096,
    ) {
        let name = if ascii { "CH12" } else { "Fp1-α" };
        let text = juce_data_header(7, "example_data", 3, Some(name), ns, 30720, 30000.0, Some(1795909223436));
        let excess = text.len() - text.chars().count();
        let content_end = text.find("\r\n  },").unwrap() + 5;
        let k = cut.min(text.len() - 1);
        // Cuts this bug can make (within the excess and after the content object) may repair.
        prop_assume!(ascii || k > excess || text.len() - k < content_end);
        let mut buf = text.as_bytes()[..text.len() - k].to_vec();
        let len = buf.len();
        buf.resize(len + 16, 0);
        let r = parse_header_mut(&mut buf, len);
        if !ascii && k > excess && text.len() - k >= content_end {
            // Beyond the excess: only a repair that the excess bound allows may succeed, and
            // then it never invents a value (e.g. a timestamp cut mid-way is dropped).
            if let Ok((Header::Data(d), _)) = &r {
                prop_assert!(d.timestamp.is_none() || d.timestamp == Some(1795909223436));
                prop_assert!(d.data_size.is_none() || d.data_size == Some(ns as i64 * 4));
            }
        } else {
            prop_assert!(r.is_err(), "cut {} of {:?} parsed: {:?}", k, text, r);
        }
    }
}
