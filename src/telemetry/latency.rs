//! Latency histograms.
//!
//! Each hot thread owns bounded `hdrhistogram` histograms (fixed range, no auto-resize:
//! recording never allocates; values outside the range are clamped by `saturating_record`).
//! It hands them over once a second through an SPSC ring ([`LatencyPublisher`] →
//! [`LatencyCollector`]) and returns the rest when it is joined. Counters live in
//! [`crate::telemetry::counters`].

use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Highest latency a histogram records exactly (ns): 100 s.
pub const MAX_LATENCY_NS: u64 = 100_000_000_000;

/// A bounded latency histogram in nanoseconds (3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    // Bounds are constants known to be valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).unwrap_or_else(|_| unreachable!())
}

/// Named latency histograms (one per measured span).
#[derive(Debug, Clone)]
pub struct Latencies {
    /// `(name, description, histogram)`.
    pub hists: Vec<(&'static str, &'static str, Histogram<u64>)>,
}

/// Spans the bridge measures.
pub const SPANS: [(&str, &str); 6] = [
    (
        "bridge_added",
        "block's last ZMQ message received -> return of the send call carrying the last datagram its processing produced",
    ),
    (
        "block_to_output",
        "block's last ZMQ message received -> send of the datagram holding its last sample (adds downsampling-group and batch-fill waits)",
    ),
    (
        "publisher_to_wire",
        "header timestamp (sender wall clock, ms resolution) -> same send as bridge_added (needs synced clocks)",
    ),
    (
        "queue_wait",
        "block complete at the receiver -> taken by the encoder shard",
    ),
    (
        "block_spread",
        "first -> last channel message of a block at the receiver (publisher burst)",
    ),
    (
        "shard_frame_cost",
        "encoder shard time to downsample, encode and send one block",
    ),
];

/// Index of each span in [`SPANS`].
pub mod span {
    /// See [`super::SPANS`].
    pub const BRIDGE_ADDED: usize = 0;
    /// See [`super::SPANS`].
    pub const BLOCK_TO_OUTPUT: usize = 1;
    /// See [`super::SPANS`].
    pub const PUBLISHER_TO_WIRE: usize = 2;
    /// See [`super::SPANS`].
    pub const QUEUE_WAIT: usize = 3;
    /// See [`super::SPANS`].
    pub const BLOCK_SPREAD: usize = 4;
    /// See [`super::SPANS`].
    pub const SHARD_FRAME_COST: usize = 5;
}

impl Latencies {
    /// Empty histograms for every span in [`SPANS`].
    pub fn new() -> Self {
        Latencies {
            hists: SPANS
                .iter()
                .map(|(n, d)| (*n, *d, latency_histogram()))
                .collect(),
        }
    }
    /// Records `ns` into span `i` (never allocates; clamps to the range).
    #[inline]
    pub fn record(&mut self, i: usize, ns: u64) {
        self.hists[i].2.saturating_record(ns.max(1));
    }
    /// Adds another set (same spans).
    pub fn merge(&mut self, other: &Latencies) {
        for (a, b) in self.hists.iter_mut().zip(&other.hists) {
            // Same bounds on both sides: cannot fail.
            let _ = a.2.add(&b.2);
        }
    }
    /// The histogram of a span.
    pub fn get(&self, name: &str) -> Option<&Histogram<u64>> {
        self.hists.iter().find(|h| h.0 == name).map(|h| &h.2)
    }
    /// A p50/p90/p99/p99.9/max table in milliseconds.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<18} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, _, h) in &self.hists {
            if h.is_empty() {
                let _ = writeln!(s, "{name:<18} {:>9} {:>9}", 0, "-");
                continue;
            }
            let ms = |v: u64| v as f64 / 1e6;
            let _ = writeln!(
                s,
                "{:<18} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name,
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.9)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
                ms(h.max()),
            );
        }
        s
    }
    /// Writes every distribution as CSV: one row per percentile step
    /// (`metric,percentile,value_us,count_at_or_below,total_count`).
    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let mut out = String::from("metric,percentile,value_us,count_at_or_below,total_count\n");
        for (name, _, h) in &self.hists {
            if h.is_empty() {
                continue;
            }
            let mut cumulative = 0u64;
            for v in h.iter_quantiles(4) {
                cumulative += v.count_since_last_iteration();
                let _ = writeln!(
                    out,
                    "{},{:.6},{:.3},{},{}",
                    name,
                    v.quantile_iterated_to() * 100.0,
                    v.value_iterated_to() as f64 / 1e3,
                    cumulative,
                    h.len()
                );
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(path)?;
        f.write_all(out.as_bytes())
    }
}

impl Latencies {
    /// Empties every histogram (keeps the memory: no allocation).
    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.2.reset();
        }
    }
}

/// The hot-thread end of a latency hand-over: every `every`, swaps the thread's histograms
/// with an empty set the controller provided and sends the full set back — two pointer moves
/// through SPSC rings, no allocation, no lock. If no empty set is waiting, it simply keeps
/// recording and tries again at the next interval.
pub struct LatencyPublisher {
    spare: rtrb::Consumer<Box<Latencies>>,
    full: rtrb::Producer<Box<Latencies>>,
    every: std::time::Duration,
    next: std::time::Instant,
}

impl LatencyPublisher {
    /// Hands `lat` over if the interval passed and an empty set is available.
    #[inline]
    pub fn maybe_publish(&mut self, lat: &mut Latencies, now: std::time::Instant) {
        if now < self.next {
            return;
        }
        self.next = now + self.every;
        if let Ok(mut spare) = self.spare.pop() {
            std::mem::swap(&mut *spare, lat);
            // The ring holds two sets per thread: it has room.
            let _ = self.full.push(spare);
        }
    }
}

/// The controller end: merges what the hot threads handed over into a running total (read by
/// the dashboard, the JSON stats and `--histogram-interval`) and sends the emptied sets back.
pub struct LatencyCollector {
    spares: Vec<rtrb::Producer<Box<Latencies>>>,
    fulls: Vec<rtrb::Consumer<Box<Latencies>>>,
    total: Latencies,
}

impl std::fmt::Debug for LatencyCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LatencyCollector({} threads)", self.fulls.len())
    }
}

impl LatencyCollector {
    /// A collector and one publisher per hot thread, each publishing every `every`.
    pub fn new(threads: usize, every: std::time::Duration) -> (Self, Vec<LatencyPublisher>) {
        let mut spares = Vec::new();
        let mut fulls = Vec::new();
        let mut pubs = Vec::new();
        for _ in 0..threads {
            let (mut sp, sc) = rtrb::RingBuffer::new(2);
            let (fp, fc) = rtrb::RingBuffer::new(2);
            let _ = sp.push(Box::new(Latencies::new()));
            spares.push(sp);
            fulls.push(fc);
            pubs.push(LatencyPublisher {
                spare: sc,
                full: fp,
                every,
                next: std::time::Instant::now() + every,
            });
        }
        (
            LatencyCollector {
                spares,
                fulls,
                total: Latencies::new(),
            },
            pubs,
        )
    }

    /// Merges everything handed over so far; returns the running total.
    pub fn collect(&mut self) -> &Latencies {
        for (full, spare) in self.fulls.iter_mut().zip(&mut self.spares) {
            while let Ok(mut l) = full.pop() {
                self.total.merge(&l);
                l.reset();
                let _ = spare.push(l);
            }
        }
        &self.total
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_hands_histograms_over_without_losing_values() {
        let (mut col, mut pubs) = LatencyCollector::new(1, std::time::Duration::ZERO);
        let mut lat = Latencies::new();
        lat.record(0, 1000);
        lat.record(0, 2000);
        let t = std::time::Instant::now();
        pubs[0].maybe_publish(&mut lat, t);
        assert!(
            lat.get("bridge_added").unwrap().is_empty(),
            "swapped for an empty set"
        );
        lat.record(0, 3000);
        assert_eq!(col.collect().get("bridge_added").unwrap().len(), 2);
        pubs[0].maybe_publish(&mut lat, t + std::time::Duration::from_millis(1));
        assert_eq!(col.collect().get("bridge_added").unwrap().len(), 3);
        // No spare yet returned twice in a row: values stay with the thread, nothing lost.
        lat.record(0, 4000);
        pubs[0].maybe_publish(&mut lat, t + std::time::Duration::from_millis(2));
        pubs[0].maybe_publish(&mut lat, t + std::time::Duration::from_millis(3));
        lat.record(0, 5000);
        let total = col.collect().get("bridge_added").unwrap().len()
            + lat.get("bridge_added").unwrap().len();
        assert_eq!(total, 5);
    }

    #[test]
    fn latencies_record_merge_and_export() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        for v in 1..=1000u64 {
            a.record(0, v * 1000);
        }
        b.record(0, 5_000_000);
        b.record(0, u64::MAX); // clamped, not lost
        a.merge(&b);
        let h = a.get("bridge_added").unwrap();
        assert_eq!(h.len(), 1002);
        assert!(h.max() >= MAX_LATENCY_NS / 2);
        assert!(a.table().contains("bridge_added"));
        let dir = std::env::temp_dir().join(format!("z2o-metrics-{}", std::process::id()));
        let p = dir.join("h.csv");
        a.write_csv(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("metric,percentile,value_us"));
        assert!(
            text.lines()
                .filter(|l| l.starts_with("bridge_added,"))
                .count()
                > 10
        );
        let last = text.lines().last().unwrap();
        assert!(last.contains("100.000000"));
        let cols: Vec<&str> = last.split(',').collect();
        assert_eq!(
            cols[3], cols[4],
            "the last row counts every value at or below it"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
