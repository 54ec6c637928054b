//! [`BlockClock`]: the send times shared with the simulator for latency.

use std::sync::atomic::{fence, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) struct ClockEntry {
    seq: AtomicU64,
    sample_num: AtomicI64,
    num_samples: AtomicU64,
    sent_ns: AtomicU64,
}

/// Send times of simulator blocks, shared between a simulator (single writer) and a sink
/// (readers) in the same process. Lock-free: a fixed ring of seqlocked atomic entries.
pub struct BlockClock {
    base: Instant,
    head: AtomicU64,
    entries: Box<[ClockEntry]>,
}

impl std::fmt::Debug for BlockClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockClock")
            .field("capacity", &self.entries.len())
            .field("recorded", &self.head.load(Ordering::Relaxed))
            .finish()
    }
}

impl BlockClock {
    /// A clock remembering the last `capacity` blocks (at least 1).
    pub fn new(capacity: usize) -> Self {
        let now = Instant::now();
        // Allow `sent` instants somewhat older than the clock itself.
        let base = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        let entries = (0..capacity.max(1))
            .map(|_| ClockEntry {
                seq: AtomicU64::new(0),
                sample_num: AtomicI64::new(0),
                num_samples: AtomicU64::new(0),
                sent_ns: AtomicU64::new(0),
            })
            .collect();
        BlockClock {
            base,
            head: AtomicU64::new(0),
            entries,
        }
    }

    /// Records a block (first absolute sample number, sample count, time its last ZMQ message
    /// was sent). Must be called from one thread at a time (single writer).
    pub fn record(&self, sample_num: i64, num_samples: usize, sent: Instant) {
        let n = self.head.load(Ordering::Relaxed);
        let e = &self.entries[(n % self.entries.len() as u64) as usize];
        let s = e.seq.load(Ordering::Relaxed);
        e.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        e.sample_num.store(sample_num, Ordering::Relaxed);
        e.num_samples.store(num_samples as u64, Ordering::Relaxed);
        let ns = sent.saturating_duration_since(self.base).as_nanos();
        e.sent_ns
            .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
        e.seq.store(s.wrapping_add(2), Ordering::Release);
        self.head.store(n + 1, Ordering::Release);
    }

    /// Consistent read of one entry: (sample_num, num_samples, sent_ns).
    fn read(&self, idx: usize) -> Option<(i64, u64, u64)> {
        let e = &self.entries[idx];
        for _ in 0..8 {
            let s1 = e.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let sn = e.sample_num.load(Ordering::Relaxed);
            let ns = e.num_samples.load(Ordering::Relaxed);
            let t = e.sent_ns.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if e.seq.load(Ordering::Relaxed) == s1 {
                return Some((sn, ns, t));
            }
        }
        None
    }

    /// Sent time of the (most recent) block containing absolute sample index `sample_index`,
    /// searching the retained entries from newest to oldest.
    pub fn lookup(&self, sample_index: i64) -> Option<Instant> {
        let h = self.head.load(Ordering::Acquire);
        let cap = self.entries.len() as u64;
        for back in 0..h.min(cap) {
            let idx = ((h - 1 - back) % cap) as usize;
            let Some((sn, ns, t)) = self.read(idx) else {
                continue;
            };
            if sample_index >= sn
                && sample_index
                    .checked_sub(sn)
                    .is_some_and(|d| (d as u64) < ns)
            {
                return self.base.checked_add(Duration::from_nanos(t));
            }
        }
        None
    }

    /// Last sample index of the most recently recorded block.
    pub fn latest_sample(&self) -> Option<i64> {
        let h = self.head.load(Ordering::Acquire);
        if h == 0 {
            return None;
        }
        let idx = ((h - 1) % self.entries.len() as u64) as usize;
        let (sn, ns, _) = self.read(idx)?;
        (ns > 0).then(|| sn.saturating_add(i64::try_from(ns).unwrap_or(i64::MAX) - 1))
    }
}
