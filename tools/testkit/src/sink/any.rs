//! The `--any` statistics: what arrives, whatever its shape.

use super::*;
use std::time::Instant;

/// Inter-arrival histogram bucket upper bounds (µs); the last bucket is open.
pub const ARRIVAL_BUCKETS_US: [u64; 8] = [
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    u64::MAX,
];

/// What [`Layout::Any`] measures.
#[derive(Debug, Clone, Default)]
pub struct AnyStats {
    /// Valid OSC messages.
    pub messages: u64,
    /// Messages per address (at most 64 distinct addresses are kept; the rest are summed
    /// under `"(other)"`).
    pub addresses: Vec<(String, u64)>,
    /// Rows: 1 per `…/sample` message, k per `…/batch/<k>` message.
    pub rows: u64,
    /// Smallest and largest datagram (bytes).
    pub min_bytes: usize,
    /// Largest datagram (bytes).
    pub max_bytes: usize,
    /// Largest argument count.
    pub max_args: usize,
    /// Row messages that carried a sample number (two ints, hi/lo, before the floats).
    pub numbered: u64,
    /// Forward jumps in the sample numbers (rows missing before this one).
    pub gaps: u64,
    /// Samples skipped by those jumps (at F = 1 these are lost rows).
    pub gap_samples: u64,
    /// Sample numbers lower than the previous one (reordered, duplicated or a restart/loop).
    pub reorders: u64,
    /// Inter-arrival times per [`ARRIVAL_BUCKETS_US`] bucket.
    pub arrival_hist: [u64; 8],
    /// Largest inter-arrival time (µs).
    pub max_gap_us: u64,
    /// Sample-number step between consecutive row messages (learned from the first two).
    step: Option<i64>,
    last_sample: Option<i64>,
    last_at: Option<Instant>,
}

impl AnyStats {
    /// Accounts one message of `bytes` bytes that arrived at `now`.
    pub fn handle(&mut self, msg: &OscMessage<'_>, bytes: usize, now: Instant) {
        self.messages += 1;
        self.min_bytes = if self.messages == 1 {
            bytes
        } else {
            self.min_bytes.min(bytes)
        };
        self.max_bytes = self.max_bytes.max(bytes);
        self.max_args = self.max_args.max(msg.type_tags.len());
        if let Some(t) = self.last_at {
            let us = now.saturating_duration_since(t).as_micros() as u64;
            self.max_gap_us = self.max_gap_us.max(us);
            let b = ARRIVAL_BUCKETS_US.iter().position(|&u| us < u).unwrap_or(7);
            self.arrival_hist[b] += 1;
        }
        self.last_at = Some(now);
        let key =
            if self.addresses.len() < 64 || self.addresses.iter().any(|(a, _)| a == msg.address) {
                msg.address
            } else {
                "(other)"
            };
        match self.addresses.iter().position(|(a, _)| a == key) {
            Some(i) => self.addresses[i].1 += 1,
            None => self.addresses.push((key.to_string(), 1)),
        }
        let rows = if msg.address.ends_with("/sample") {
            1
        } else {
            msg.address
                .rsplit_once("/batch/")
                .and_then(|(_, k)| k.parse::<u64>().ok())
                .unwrap_or_default()
        };
        if rows == 0 {
            return;
        }
        self.rows += rows;
        // The bridge puts the sample number (hi, lo) after its leading ints (none for
        // `/sample`, N for `/batch/<k>`), before the floats; trailing `ii` is accepted too.
        let tags = msg.type_tags;
        let lead = tags.iter().take_while(|&&t| t == b'i').count();
        let need = if msg.address.ends_with("/sample") {
            2
        } else {
            3
        };
        let ints: Vec<i32> = msg
            .args()
            .filter_map(|a| match a {
                OscArg::Int(i) => Some(i),
                _ => None,
            })
            .collect();
        let pair = if lead >= need && lead < tags.len() {
            Some((ints[lead - 2], ints[lead - 1]))
        } else if lead < tags.len() && tags.ends_with(b"ii") && ints.len() >= 2 {
            Some((ints[ints.len() - 2], ints[ints.len() - 1]))
        } else {
            None
        };
        let Some((hi, lo)) = pair else { return };
        let sample = (i64::from(hi) << 32) | i64::from(lo as u32);
        self.numbered += 1;
        if let Some(last) = self.last_sample {
            let d = sample - last;
            match self.step {
                None if d > 0 => self.step = Some(d),
                _ => {}
            }
            let step = self.step.unwrap_or(d.max(1));
            if d < 0 || (d == 0 && step > 0) {
                self.reorders += 1;
            } else if d > step {
                self.gaps += 1;
                self.gap_samples += (d - step) as u64;
            }
        }
        self.last_sample = Some(sample);
    }

    /// A short text histogram of the inter-arrival times.
    pub fn histogram_text(&self) -> String {
        let labels = [
            "<10µs", "<100µs", "<1ms", "<10ms", "<100ms", "<1s", "<10s", "≥10s",
        ];
        let total: u64 = self.arrival_hist.iter().sum();
        let mut out = String::new();
        for (l, n) in labels.iter().zip(self.arrival_hist) {
            if n == 0 {
                continue;
            }
            let bar = "#".repeat(((n * 40) / total.max(1)) as usize);
            out.push_str(&format!("  {l:>7} {n:>10} {bar}\n"));
        }
        out
    }
}
