//! A probe for counting the DATA header scanner's instructions under callgrind (this VM has no
//! PMU, and wall-clock benches are noisy): it reads the same header(s) `N` times, so the
//! difference between two runs with different `N`, divided by the difference in `N`, is the
//! cost of one header in instructions (Ir), independent of start-up.
//!
//! ```text
//! cargo build --release --example scan_probe
//! for n in 1 100001; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/scan_probe $n scan 2>&1 | grep 'Collected'; done
//! ```
//!
//! Modes (second argument):
//! * `scan`: `scan::scan_data_header` on the `parse_header` bench's header
//!   (`benches/assemble.rs`: message 12 345, `example_data`, channel 17 `CH18`, 696 samples,
//!   30 kHz, with a timestamp);
//! * `path`: the receiver's path, `protocol::parse_header_fast`, on the same header (with the
//!   receiver's trailing NUL);
//! * `cycle`: the scanner over 2 048 different headers (8 blocks × 256 channels, names `CH1`…
//!   `CH256`, numbers of every length the bench's run produces), as the receiver sees them;
//! * `json`: the full JSON parse (`protocol::parse_header`) on the bench's header;
//! * `none`: the loop alone (touches the header, no parse), for the loop's own share.
//!
//! Each mode checks its result, so a scanner that stopped answering would show as a panic, not
//! as a small count.

use oe_testkit::sim::juce_data_header;
use std::hint::black_box;
use zmq2osc::ingest::protocol::{parse_header, parse_header_fast, Header, HeaderPath};
use zmq2osc::ingest::scan::scan_data_header;

const STREAM: &str = "example_data";
const BLOCK: usize = 696;

fn bench_header() -> Vec<u8> {
    juce_data_header(
        12_345,
        STREAM,
        17,
        Some("CH18"),
        BLOCK,
        696_000,
        30_000.0,
        Some(1_700_000_000_000),
    )
    .into_bytes()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mode = args.next().unwrap_or_else(|| "scan".into());
    let hb = bench_header();
    let mut acc = 0i64;
    match mode.as_str() {
        "scan" => {
            for _ in 0..n {
                let h = scan_data_header(black_box(&hb)).expect("scanned");
                acc = acc.wrapping_add(h.sample_num + h.stream.len() as i64);
            }
        }
        "path" => {
            let len = hb.len();
            let mut buf = hb.clone();
            buf.push(0);
            for _ in 0..n {
                let (h, p) = parse_header_fast(black_box(&mut buf), len).expect("parsed");
                assert_eq!(p, HeaderPath::Scanned);
                acc = acc.wrapping_add(h.message_num().unwrap_or(0));
            }
        }
        "cycle" => {
            let headers: Vec<Vec<u8>> = (0..8 * 256)
                .map(|i| {
                    let (blk, ch) = (i / 256, i % 256);
                    juce_data_header(
                        i as i64 + 1,
                        STREAM,
                        ch as u32,
                        Some(&format!("CH{}", ch + 1)),
                        BLOCK,
                        (blk * BLOCK) as i64,
                        30_000.0,
                        Some(1_700_000_000_000 + blk as i64 * 23),
                    )
                    .into_bytes()
                })
                .collect();
            for k in 0..n {
                let hb = &headers[k as usize % headers.len()];
                let h = scan_data_header(black_box(hb)).expect("scanned");
                acc = acc.wrapping_add(h.sample_num + h.channel_num);
            }
        }
        "json" => {
            for _ in 0..n {
                match parse_header(black_box(&hb)) {
                    Ok(Header::Data(h)) => acc = acc.wrapping_add(h.sample_num),
                    other => panic!("unexpected parse: {other:?}"),
                }
            }
        }
        "none" => {
            for _ in 0..n {
                acc = acc.wrapping_add(i64::from(black_box(&hb)[0]));
            }
        }
        other => {
            eprintln!("unknown mode {other}: scan, path, cycle, json or none");
            std::process::exit(2);
        }
    }
    println!("{mode} x{n}: {acc}");
}
