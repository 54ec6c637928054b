//! What the engine was started with (start-up layout) and the final report (ledger).

use super::{OutputLayout, PinReport};
use crate::telemetry::latency::Latencies;
use std::time::Duration;

/// One ZMQ source as started.
#[derive(Debug, Clone)]
pub struct SourceLayout {
    /// Name (`zmq` for the original's single source).
    pub name: String,
    /// ZMQ data endpoint.
    pub data_endpoint: String,
    /// Heartbeat endpoint.
    pub heartbeat_endpoint: String,
    /// Heartbeat uuid.
    pub uuid: String,
    /// Indices of the outputs it feeds.
    pub outputs: Vec<usize>,
    /// Its receiver thread's name.
    pub receiver_thread: String,
    /// Frames in its slab pool.
    pub slab_frames: usize,
}

/// What the engine was started with (for the start-up report).
#[derive(Debug, Clone)]
pub struct Layout {
    /// ZMQ data endpoint (of the first source).
    pub data_endpoint: String,
    /// Heartbeat endpoint (of the first source).
    pub heartbeat_endpoint: String,
    /// Every source, in config order.
    pub sources: Vec<SourceLayout>,
    /// The config listed its sources (`zmq.sources`).
    pub sources_listed: bool,
    /// The source index of each output.
    pub output_sources: Vec<usize>,
    /// The outputs, one shard each.
    pub outputs: Vec<OutputLayout>,
    /// Frames in the slab pools (all sources).
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

/// One source's counters at exit.
#[derive(Debug, Clone)]
pub struct SourceReport {
    /// Name.
    pub name: String,
    /// Data endpoint.
    pub endpoint: String,
    /// Its receiver's counters.
    pub rx: Vec<(&'static str, u64)>,
    /// Its heartbeat's counters.
    pub hb: Vec<(&'static str, u64)>,
}

/// Final results of a run.
#[derive(Debug)]
pub struct Report {
    /// Merged latency histograms.
    pub latencies: Latencies,
    /// What `--record` wrote (one entry per source file; empty without `--record`).
    pub recorded: Vec<RecordReport>,
    /// Per source counters, in config order.
    pub sources: Vec<SourceReport>,
    /// The config listed its sources (`zmq.sources`): the report shows each.
    pub sources_listed: bool,
    /// The source index of each output (in `tx` order).
    pub output_sources: Vec<usize>,
    /// Receiver counters at exit, summed over the sources (states and rates: maximum).
    pub rx: Vec<(&'static str, u64)>,
    /// Shard counters at exit, one list per output.
    pub tx: Vec<Vec<(&'static str, u64)>>,
    /// Output names, in `tx` order.
    pub outputs: Vec<String>,
    /// Heartbeat counters at exit, summed over the sources (state: maximum).
    pub hb: Vec<(&'static str, u64)>,
    /// A thread panicked or failed.
    pub failed: bool,
}

/// What `--record` wrote to one file.
#[derive(Debug, Clone)]
pub struct RecordReport {
    /// The zmqcap file.
    pub path: std::path::PathBuf,
    /// Messages written.
    pub written: u64,
    /// Messages not recorded because the receiver found the record ring full.
    pub dropped: u64,
    /// Messages lost to a write error.
    pub failed: u64,
    /// The write error that stopped the recording, if any.
    pub error: Option<String>,
}

pub(crate) fn lookup(v: &[(&'static str, u64)], n: &str) -> u64 {
    v.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1)
}

impl Report {
    fn rx(&self, n: &str) -> u64 {
        lookup(&self.rx, n)
    }

    /// The books: every block received is accounted for exactly once (per source when the
    /// config lists its sources); for every output, every block its source sent on is
    /// encoded or dropped by the queue policy, and every datagram built is sent or failed.
    /// Returns the text and whether everything balances.
    pub fn ledger(&self) -> (String, bool) {
        let mark = |b: bool| if b { "balanced" } else { "NOT BALANCED" };
        let receiver_line = |label: &str, rx: &[(&'static str, u64)]| {
            let r = |n: &str| lookup(rx, n);
            let opened = r("blocks_opened");
            let emitted = r("blocks_emitted");
            let inc = r("blocks_incomplete");
            let up = r("blocks_incomplete_upstream");
            let learn = r("blocks_learning");
            let noframe = r("blocks_no_frame");
            let b1 = opened == emitted + inc + up + learn + noframe;
            let text = format!(
                "ledger     {label}blocks received {opened} = sent on {emitted} (of which {} with missing channels filled) + incomplete {inc} \
                 + incomplete(upstream loss) {up} + learning {learn} + no free frame {noframe}  [{}]; upstream: {} messages missing by message_num, {} samples by sample_num",
                r("blocks_filled"),
                mark(b1),
                r("upstream_missing_msgs"),
                r("upstream_missing_samples"),
            );
            (text, b1)
        };
        let mut ok = true;
        let mut lines = Vec::new();
        if self.sources_listed {
            for s in &self.sources {
                let (t, b) = receiver_line(&format!("<{}> ", s.name), &s.rx);
                ok &= b;
                lines.push(t);
            }
        } else {
            let (t, b) = receiver_line("", &self.rx);
            ok &= b;
            lines.push(t);
        }
        let mut text = lines.join("\n");
        for (i, t) in self.tx.iter().enumerate() {
            // Blocks sent on by this output's own source.
            let emitted = match self
                .output_sources
                .get(i)
                .and_then(|&s| self.sources.get(s))
            {
                Some(s) if self.sources.len() > 1 => lookup(&s.rx, "blocks_emitted"),
                _ => self.rx("blocks_emitted"),
            };
            let g = |n: &str| lookup(t, n);
            let b2 =
                emitted == g("frames") + g("dropped_oldest") + g("dropped_newest") + g("queued");
            let b3 = g("datagrams") == g("sent") + g("send_dropped");
            ok &= b2 && b3;
            let name = self.outputs.get(i).map_or("output", String::as_str);
            let from = match self
                .output_sources
                .get(i)
                .and_then(|&s| self.sources.get(s))
            {
                Some(s) if self.sources_listed => format!(" from <{}>", s.name),
                _ => String::new(),
            };
            text.push_str(&format!(
                "\nledger     [{name}]{from} blocks sent on {emitted} = encoded {} + dropped oldest {} + dropped newest {} \
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
