//! An encoder shard `osc_tx_N`: downsample, batch, encode and send one output, with pacing.

use super::counters::publish_tx;
use super::{wall_ms, Shared};
use crate::config::OverflowStrategy;
use crate::frame::Frame;
use crate::net::{RateLimitedLog, UdpSender};
use crate::output::{OutputPipeline, StatusValues, Transmit};
use crate::telemetry::latency::{span, Latencies, LatencyPublisher};
use rtrb::{Consumer, Producer};
use std::sync::Arc;
use std::thread::{self};
use std::time::{Duration, Instant};

/// What a shard thread is started with.
pub(crate) struct ShardStart {
    pub(crate) name: String,
    /// The source this output carries (its receiver feeds the ring).
    pub(crate) source: usize,
    pub(crate) frames: Consumer<Arc<Frame>>,
    pub(crate) ret: Producer<Arc<Frame>>,
    pub(crate) pipeline: OutputPipeline,
    pub(crate) sender: UdpSender,
    pub(crate) pacing: bool,
    /// Test hook: panic after this many frames.
    #[cfg(feature = "test-hooks")]
    pub(crate) panic_after: Option<u64>,
}

pub(crate) struct ShardTx {
    pub(crate) sender: UdpSender,
    pub(crate) lat: Latencies,
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    /// The output's source (whose receiver counters the status message reports).
    pub(crate) source: usize,
    /// Pacing: spread a block's datagrams over `pace_span` from `pace_start`.
    pub(crate) pacing: bool,
    pub(crate) pace_start: Instant,
    pub(crate) pace_span: Duration,
    pub(crate) pace_expected: u64,
    pub(crate) pace_sent: u64,
}

impl ShardTx {
    fn begin_frame(&mut self, now: Instant, span: Duration, expected: u64) {
        self.pace_start = now;
        self.pace_span = span;
        self.pace_expected = expected.max(1);
        self.pace_sent = 0;
    }
}

impl Transmit for ShardTx {
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
        if !self.pacing || self.pace_span.is_zero() {
            self.sender.send_batch(arena, dgrams);
            return;
        }
        // Pacing: datagram k of this block is due at start + k·span/expected; send what is
        // due in small groups (still one syscall each, GSO-eligible), sleep until the next.
        let mut i = 0;
        while i < dgrams.len() {
            let due = self.pace_start
                + self
                    .pace_span
                    .mul_f64((self.pace_sent as f64 / self.pace_expected as f64).min(1.0));
            let now = Instant::now();
            if due > now {
                let wait = due - now;
                if wait > Duration::from_micros(300) {
                    thread::sleep(wait - Duration::from_micros(200));
                }
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
            let group = (dgrams.len() - i).min(8);
            self.sender.send_batch(arena, &dgrams[i..i + group]);
            i += group;
            self.pace_sent += group as u64;
        }
    }
    fn run_hint(&self, len: usize) -> usize {
        if self.pacing {
            1
        } else {
            self.sender.gso_run(len)
        }
    }
    fn block_sent(&mut self, arrival: Instant, _header_timestamp_ms: Option<i64>) {
        self.lat
            .record(span::BLOCK_TO_OUTPUT, arrival.elapsed().as_nanos() as u64);
    }
    fn status(&self) -> StatusValues {
        let r = &self.shared.rx[self.source];
        let t = &self.shared.tx[self.index];
        let o = &self.shared.rx_out[self.index];
        StatusValues {
            received: r.blocks_opened.get(),
            sent: self.sender.stats().datagrams_sent,
            dropped_policy: t.dropped_oldest.get() + o.dropped_newest.get(),
            upstream_gaps: r.upstream_missing_msgs.get(),
            malformed: r.malformed.get(),
            incomplete: r.blocks_incomplete.get() + r.blocks_incomplete_upstream.get(),
            channels: r.channels.get(),
            rate: r.sample_rate_mhz.get() as f32 / 1000.0,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_shard(
    shared: Arc<Shared>,
    index: usize,
    st: ShardStart,
    policy: OverflowStrategy,
    queue_max: usize,
    spin: Duration,
    verbose: bool,
    mut lat_pub: LatencyPublisher,
) -> Latencies {
    let ShardStart {
        name,
        source,
        mut frames,
        mut ret,
        mut pipeline,
        sender,
        pacing,
        #[cfg(feature = "test-hooks")]
        panic_after,
    } = st;
    let mut tx = ShardTx {
        sender,
        lat: Latencies::new(),
        shared: shared.clone(),
        index,
        source,
        pacing,
        pace_start: Instant::now(),
        pace_span: Duration::ZERO,
        pace_expected: 1,
        pace_sent: 0,
    };
    // A shard gets one frame per block (23 ms apart with GUI blocks) or finds the next one
    // already queued, so a long poll after a frame almost never catches anything: its window
    // is a tenth of the receiver's (whose messages come microseconds apart within a burst).
    let spin = spin / 10;
    let counters = &shared.tx[index];
    let mut dropped_oldest = 0u64;
    let mut idle_since: Option<Instant> = None;
    let mut oversize_logged = 0u64;
    let mut last_frame_dgrams = 0u64;
    let mut log = RateLimitedLog::default();
    crate::hot::mark_current_thread_hot();
    loop {
        if policy == OverflowStrategy::DropOldest {
            while frames.slots() > queue_max {
                if let Ok(f) = frames.pop() {
                    if f.num_samples > 0 {
                        dropped_oldest += 1;
                    }
                    let _ = ret.push(f);
                }
            }
        }
        match frames.pop() {
            Ok(f) => {
                idle_since = None;
                let now = Instant::now();
                if f.num_samples > 0 {
                    tx.lat.record(
                        span::QUEUE_WAIT,
                        now.duration_since(f.arrival).as_nanos() as u64,
                    );
                }
                #[cfg(feature = "test-hooks")]
                if panic_after.is_some_and(|n| pipeline.counters.frames >= n) {
                    panic!("osc_tx_{index}: injected failure (test hook)");
                }
                if pacing && f.num_samples > 0 {
                    // Spread over 90 % of the block's duration, at the last block's volume.
                    let d = Duration::from_secs_f64(f.num_samples as f64 / f.sample_rate.max(1.0));
                    tx.begin_frame(now, d.mul_f64(0.9), last_frame_dgrams);
                } else {
                    tx.pace_span = Duration::ZERO;
                }
                let before = pipeline.counters.datagrams;
                pipeline.process(&f, now, &mut tx);
                let done = Instant::now();
                last_frame_dgrams = pipeline.counters.datagrams - before;
                if f.num_samples > 0 {
                    tx.lat.record(
                        span::SHARD_FRAME_COST,
                        done.duration_since(now).as_nanos() as u64,
                    );
                    if pipeline.counters.datagrams != before {
                        // process() returns after the send carrying its last datagram returned.
                        tx.lat.record(
                            span::BRIDGE_ADDED,
                            done.duration_since(f.arrival).as_nanos() as u64,
                        );
                        if let Some(ts) = f.header_timestamp_ms {
                            let d = wall_ms().saturating_sub(ts);
                            if d >= 0 {
                                tx.lat.record(
                                    span::PUBLISHER_TO_WIRE,
                                    (d as u64).saturating_mul(1_000_000),
                                );
                            }
                        }
                    }
                }
                // The return ring holds the whole pool: this push cannot fail.
                let _ = ret.push(f);
                publish_tx(
                    counters,
                    &pipeline,
                    &tx.sender,
                    dropped_oldest,
                    frames.slots(),
                );
                lat_pub.maybe_publish(&mut tx.lat, done);
                if pipeline.counters.oversize > oversize_logged {
                    oversize_logged = pipeline.counters.oversize;
                    if verbose && log.admit(crate::net::LogKind::TooBig, now).is_some() {
                        eprintln!(
                            "osc_tx_{index} ({name}): refused {} message(s) larger than the datagram limit of {} bytes: \
                             lower osc.processing.batch_size or the channel count, or use an `outputs` entry (which splits)",
                            oversize_logged,
                            pipeline.format().max_datagram
                        );
                    }
                }
            }
            Err(_) => {
                if frames.is_abandoned() && frames.is_empty() {
                    break;
                }
                let now = Instant::now();
                let due = pipeline.poll(now, &mut tx);
                let since = *idle_since.get_or_insert(now);
                if super::idle_backoff(now.duration_since(since), spin) {
                    continue;
                }
                publish_tx(counters, &pipeline, &tx.sender, dropped_oldest, 0);
                lat_pub.maybe_publish(&mut tx.lat, now);
                let wait = due
                    .map_or(Duration::from_millis(20), |d| {
                        d.saturating_duration_since(now)
                    })
                    .min(Duration::from_millis(20));
                thread::park_timeout(wait);
            }
        }
    }
    tx.pace_span = Duration::ZERO;
    pipeline.finish(Instant::now(), &mut tx);
    publish_tx(counters, &pipeline, &tx.sender, dropped_oldest, 0);
    tx.lat
}
