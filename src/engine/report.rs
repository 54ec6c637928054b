//! What the engine was started with (start-up layout) and the final report (ledger).

use super::{OutputLayout, PinReport};
use crate::telemetry::latency::Latencies;
use std::time::Duration;

/// What the engine was started with (for the start-up report).
#[derive(Debug, Clone)]
pub struct Layout {
    /// ZMQ data endpoint.
    pub data_endpoint: String,
    /// Heartbeat endpoint.
    pub heartbeat_endpoint: String,
    /// The outputs, one shard each.
    pub outputs: Vec<OutputLayout>,
    /// Frames in the slab pool.
    pub slab_frames: usize,
    /// Bytes of sample memory reserved by the pool.
    pub slab_bytes: usize,
    /// Ring capacity (blocks) between receiver and each shard.
    pub ring_capacity: usize,
    /// Which hot thread sits on which core, or why pinning was skipped.
    pub pinning: PinReport,
    /// Idle spin before parking.
    pub spin: Duration,
}

/// Final results of a run.
#[derive(Debug)]
pub struct Report {
    /// Merged latency histograms.
    pub latencies: Latencies,
    /// Receiver counters at exit.
    pub rx: Vec<(&'static str, u64)>,
    /// Shard counters at exit, one list per output.
    pub tx: Vec<Vec<(&'static str, u64)>>,
    /// Output names, in `tx` order.
    pub outputs: Vec<String>,
    /// Heartbeat counters at exit.
    pub hb: Vec<(&'static str, u64)>,
    /// A thread panicked or failed.
    pub failed: bool,
}

pub(crate) fn lookup(v: &[(&'static str, u64)], n: &str) -> u64 {
    v.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1)
}

impl Report {
    fn rx(&self, n: &str) -> u64 {
        lookup(&self.rx, n)
    }

    /// The books: every block received is accounted for exactly once; for every output,
    /// every block sent on is encoded or dropped by the queue policy, and every datagram
    /// built is sent or failed. Returns the text and whether everything balances.
    pub fn ledger(&self) -> (String, bool) {
        let opened = self.rx("blocks_opened");
        let emitted = self.rx("blocks_emitted");
        let inc = self.rx("blocks_incomplete");
        let up = self.rx("blocks_incomplete_upstream");
        let learn = self.rx("blocks_learning");
        let noframe = self.rx("blocks_no_frame");
        let b1 = opened == emitted + inc + up + learn + noframe;
        let mark = |b: bool| if b { "balanced" } else { "NOT BALANCED" };
        let mut ok = b1;
        let mut text = format!(
            "ledger     blocks received {opened} = sent on {emitted} (of which {} with missing channels filled) + incomplete {inc} \
             + incomplete(upstream loss) {up} + learning {learn} + no free frame {noframe}  [{}]; upstream: {} messages missing by message_num, {} samples by sample_num",
            self.rx("blocks_filled"),
            mark(b1),
            self.rx("upstream_missing_msgs"),
            self.rx("upstream_missing_samples"),
        );
        for (i, t) in self.tx.iter().enumerate() {
            let g = |n: &str| lookup(t, n);
            let b2 =
                emitted == g("frames") + g("dropped_oldest") + g("dropped_newest") + g("queued");
            let b3 = g("datagrams") == g("sent") + g("send_dropped");
            ok &= b2 && b3;
            let name = self.outputs.get(i).map_or("output", String::as_str);
            text.push_str(&format!(
                "\nledger     [{name}] blocks sent on {emitted} = encoded {} + dropped oldest {} + dropped newest {} \
                 + still queued {}  [{}]; datagrams built {} = sent {} + failed to send {}  [{}]; \
                 refused as oversize {}; samples discarded in unfinished groups {} (+{} held at stop)",
                g("frames"),
                g("dropped_oldest"),
                g("dropped_newest"),
                g("queued"),
                mark(b2),
                g("datagrams"),
                g("sent"),
                g("send_dropped"),
                mark(b3),
                g("oversize"),
                g("group_samples_discarded"),
                g("group_samples_pending"),
            ));
        }
        (text, ok)
    }
}
