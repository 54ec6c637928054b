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
use zmq2osc::ingest::protocol::{parse_header, parse_ttl, DataHeader};

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
            prop_assert_eq!(
                c.blocks_opened,
                c.blocks_emitted + c.blocks_incomplete + c.blocks_incomplete_upstream
                    + c.blocks_learning + c.blocks_no_frame + open
            );
            check_and_recycle(&mut io, filled_ok)?;
            prop_assert_eq!(io.free.len() + open as usize, POOL);
        }
        asm.flush(&mut io);
        check_and_recycle(&mut io, filled_ok)?;
        prop_assert_eq!(io.free.len(), POOL);
        prop_assert!(!asm.has_open_block());
    }
}
