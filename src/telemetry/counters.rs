//! The counter blocks and the shared statistics every reader sees.
//!
//! One `#[repr(C)]` block of named [`Counter`]s per writer thread: [`RxCounters`] and one
//! [`RxOutputCounters`] per output (written by `zmq_rx`), one [`TxCounters`] per output
//! (written by its `osc_tx_N`), [`HbCounters`] (written by `zmq_hb`). Every block sits in its
//! own [`CachePadded`] slot, so the counters themselves (not a pointer to them) are padded and
//! no two writers share a cache line. Each counter has exactly one writing thread, which
//! publishes its plain-integer tallies with `Relaxed` stores now and then; readers (status
//! line, JSON stats, dashboard, final report) only load.
//!
//! Every field's name is its JSON key and report name, written once, in the
//! `counter_block!` invocation that declares it.
//!
//! This module depends on nothing of the engine: the engine writes these blocks, the
//! dashboard and live statistics read them.

use crate::telemetry::latency::{Latencies, LatencyCollector};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One published counter: written by one thread (`Relaxed` store), read by any.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Publishes a value (owner thread only).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The last published value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Declares a `#[repr(C)]` block of named [`Counter`]s; each field's name is its JSON key.
/// Generates `NAMES`, `N`, `values()`, `snapshot()` and `by_name()`.
macro_rules! counter_block {
    ($(#[$doc:meta])* pub struct $name:ident { $($(#[$fdoc:meta])* $field:ident,)* }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: Counter,)*
        }
        impl $name {
            /// Every counter's name (its JSON key), in field order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];
            /// Number of counters.
            pub const N: usize = Self::NAMES.len();
            /// Every counter's value, in [`Self::NAMES`] order.
            pub fn values(&self) -> Vec<u64> {
                vec![$(self.$field.get()),*]
            }
            /// `(name, value)` pairs, in field order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                Self::NAMES.iter().copied().zip(self.values()).collect()
            }
            /// A counter by name (0 when there is no such counter).
            pub fn by_name(&self, name: &str) -> u64 {
                match name {
                    $(stringify!($field) => self.$field.get(),)*
                    _ => 0,
                }
            }
        }
    };
}

counter_block! {
    /// Receiver counters (written by `zmq_rx` only).
    pub struct RxCounters {
        /// ZMQ messages received (every kind).
        messages,
        /// Data messages accepted by the assembler.
        data_msgs,
        /// TTL events received.
        ttl_events,
        /// Spikes received.
        spikes,
        /// Malformed messages (sum of the kinds below).
        malformed,
        /// Complete blocks sent on to the shards.
        blocks_emitted,
        /// Blocks dropped incomplete (a channel never arrived).
        blocks_incomplete,
        /// Blocks dropped incomplete after upstream loss (`message_num` gaps).
        blocks_incomplete_upstream,
        /// Blocks dropped while the channel set was being learned.
        blocks_learning,
        /// Blocks dropped for want of a free frame.
        blocks_no_frame,
        /// Messages of a channel outside the learned set.
        extra_channel_msgs,
        /// Messages missing upstream by `message_num`.
        upstream_missing_msgs,
        /// Gaps in `sample_num`.
        upstream_sample_gaps,
        /// Samples missing by `sample_num`.
        upstream_missing_samples,
        /// Backward `sample_num` jumps (loops).
        backward_jumps,
        /// Acquisition restarts.
        restarts,
        /// Stream (name or rate) changes.
        stream_changes,
        /// Channel-set changes.
        channel_set_changes,
        /// Data timeouts.
        data_timeouts,
        /// Blocks the receiver dropped because an output's ring was full (sum over outputs).
        dropped_newest,
        /// Times the receiver waited for a full ring (`block` policy; sum over outputs).
        block_waits,
        /// Channels in the current block layout.
        channels,
        /// Sample rate in mHz.
        sample_rate_mhz,
        /// ZMQ receive errors.
        zmq_errors,
        /// Blocks opened.
        blocks_opened,
        /// Malformed: bad envelope.
        bad_envelope,
        /// Malformed: too few frames.
        too_few_frames,
        /// Malformed: too many frames.
        too_many_frames,
        /// Malformed: bad header.
        bad_header,
        /// Malformed: unknown type.
        unknown_type,
        /// Malformed: bad `num_samples`.
        bad_num_samples,
        /// Malformed: payload length.
        payload_length,
        /// Malformed: channel out of range.
        channel_out_of_range,
        /// Malformed: bad sample rate.
        bad_sample_rate,
        /// Malformed: block size mismatch.
        block_size_mismatch,
        /// Malformed: duplicate channel.
        duplicate_channel,
        /// Malformed: bad TTL event.
        bad_event,
        /// Malformed: bad spike.
        bad_spike,
        /// Messages that arrived after their block was closed.
        late_msgs,
        /// Blocks sent on with missing channels filled.
        blocks_filled,
        /// Channel rows filled.
        rows_filled,
        /// Headers cut short by the plugin's non-ASCII length bug and repaired.
        headers_repaired,
        /// Headers read by the full JSON parse (the scanner's fallback: events, spikes,
        /// repairs, any layout other than the plugin's DATA layout).
        headers_json,
        /// Blocks held while the channel set was being learned and sent on once it was
        /// confirmed (late, not lost).
        blocks_held_late,
        /// Held blocks given up because the hold (or the frame pool) was full; each is also
        /// counted under its own cause (learning or incomplete).
        blocks_hold_overflow,
    }
}

counter_block! {
    /// What the receiver did for one output (written by `zmq_rx` only, one block per output).
    pub struct RxOutputCounters {
        /// Blocks this output lost because its ring was full (`drop_newest`, or a stalled
        /// shard past the ring's headroom).
        dropped_newest,
        /// Times the receiver waited for this output's ring (`block` policy).
        block_waits,
    }
}

counter_block! {
    /// Shard counters (written by one `osc_tx_N` only).
    pub struct TxCounters {
        /// Blocks encoded.
        frames,
        /// Blocks discarded by `drop_oldest`.
        dropped_oldest,
        /// Frames skipped (events only or not selected).
        frames_skipped,
        /// Rows (samples after downsampling) encoded.
        rows,
        /// Datagrams built.
        datagrams,
        /// OSC bytes built.
        bytes,
        /// Messages refused as larger than the datagram limit.
        oversize,
        /// Samples discarded in unfinished downsampling groups.
        group_samples_discarded,
        /// Batches flushed by the timer.
        timer_flushes,
        /// Batches flushed early.
        forced_flushes,
        /// Batches sent.
        batches,
        /// Datagrams sent.
        sent,
        /// Datagrams that failed to send (all causes).
        send_dropped,
        /// Sends refused (ECONNREFUSED).
        refused,
        /// Datagrams dropped because the socket would block.
        would_block_dropped,
        /// Datagrams the kernel refused as too big.
        too_big,
        /// Other send errors.
        other_errors,
        /// Send syscalls.
        syscalls,
        /// GSO super-buffers sent.
        gso_batches,
        /// GSO fallbacks to sendmmsg.
        gso_fallbacks,
        /// Blocks waiting in this output's ring.
        queued,
        /// Samples held in an unfinished group at stop.
        group_samples_pending,
        /// Messages split over several datagrams.
        split_messages,
        /// TTL messages sent.
        ttl_sent,
        /// Spike messages sent.
        spikes_sent,
        /// Status messages sent.
        status_sent,
        /// Notices sent.
        notices_sent,
    }
}

counter_block! {
    /// Heartbeat and data-connection counters (written by `zmq_hb` only).
    pub struct HbCounters {
        /// Heartbeats sent.
        sent,
        /// Replies received.
        replies,
        /// REQ socket resets (lazy pirate).
        resets,
        /// State, an index into [`HB_STATES`].
        state,
        /// Data connection established.
        data_connects,
        /// Data connection lost.
        data_disconnects,
        /// Data connection handshake failures.
        data_handshake_failures,
        /// Manual reconnects after a protocol error.
        data_manual_reconnects,
    }
}

/// Heartbeat states as published in the `state` counter.
pub const HB_STATES: [&str; 4] = ["connecting", "online", "not_responding", "reconnecting"];

const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

/// Receiver counter names ([`RxCounters::NAMES`]).
pub const RX_COUNTERS: &[&str] = RxCounters::NAMES;
/// Per-output counter names as reported: the shard's ([`TxCounters`]) followed by what the
/// receiver did for that output ([`RxOutputCounters`]).
pub const TX_COUNTERS: &[&str] =
    &concat::<{ TxCounters::N + RxOutputCounters::N }>(TxCounters::NAMES, RxOutputCounters::NAMES);
/// Heartbeat counter names ([`HbCounters::NAMES`]).
pub const HB_COUNTERS: &[&str] = HbCounters::NAMES;

/// Everything the threads publish for readers: the counter blocks, the time of the last
/// message, and the latency histograms handed over by the hot threads.
#[derive(Debug)]
pub struct Stats {
    /// Receiver counters.
    pub rx: CachePadded<RxCounters>,
    /// Receiver counters per output (written by the receiver).
    pub rx_out: Box<[CachePadded<RxOutputCounters>]>,
    /// Shard counters, one block per output.
    pub tx: Box<[CachePadded<TxCounters>]>,
    /// Heartbeat counters.
    pub hb: CachePadded<HbCounters>,
    /// Wall-clock ms of the last received message (0 = never; written by the receiver).
    pub last_message_ms: CachePadded<AtomicU64>,
    /// Latency histograms handed over by the hot threads once a second (the hot threads
    /// never lock this: they pass histograms through SPSC rings; only readers lock it).
    pub latency: Mutex<LatencyCollector>,
}

impl Stats {
    /// Zeroed counters for `outputs` outputs.
    pub fn new(outputs: usize, latency: LatencyCollector) -> Stats {
        Stats {
            rx: CachePadded::new(RxCounters::default()),
            rx_out: (0..outputs).map(|_| CachePadded::default()).collect(),
            tx: (0..outputs).map(|_| CachePadded::default()).collect(),
            hb: CachePadded::new(HbCounters::default()),
            last_message_ms: CachePadded::new(AtomicU64::new(0)),
            latency: Mutex::new(latency),
        }
    }

    /// Output `i`'s counters in [`TX_COUNTERS`] order (shard's, then the receiver's).
    pub fn tx_values(&self, i: usize) -> Vec<u64> {
        let mut v = self.tx.get(i).map_or_else(Vec::new, |t| t.values());
        v.extend(self.rx_out.get(i).map_or_else(Vec::new, |r| r.values()));
        v
    }

    /// Output `i`'s counters as `(name, value)` pairs, in [`TX_COUNTERS`] order.
    pub fn tx_snapshot(&self, i: usize) -> Vec<(&'static str, u64)> {
        TX_COUNTERS.iter().copied().zip(self.tx_values(i)).collect()
    }

    /// p50, p99 (ns) and count of a latency span so far (`None` before any value).
    pub fn latency_summary(&self, span: &str) -> Option<(u64, u64, u64)> {
        let mut c = self.latency.lock().ok()?;
        let h = c.collect().get(span)?;
        (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.len()))
    }

    /// A copy of every latency distribution handed over so far.
    pub fn latencies_so_far(&self) -> Latencies {
        match self.latency.lock() {
            Ok(mut c) => c.collect().clone(),
            Err(_) => Latencies::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn blocks_are_named_padded_and_read_back() {
        let s = Stats::new(2, LatencyCollector::new(1, Duration::ZERO).0);
        s.rx.late_msgs.set(7);
        s.tx[1].sent.set(3);
        s.rx_out[1].dropped_newest.set(2);
        assert_eq!(s.rx.by_name("late_msgs"), 7);
        assert_eq!(s.rx.by_name("no_such"), 0);
        assert_eq!(RX_COUNTERS.len(), RxCounters::N);
        let snap = s.tx_snapshot(1);
        assert_eq!(snap.len(), TxCounters::N + RxOutputCounters::N);
        assert!(snap.contains(&("sent", 3)) && snap.contains(&("dropped_newest", 2)));
        assert_eq!(s.tx_snapshot(0).iter().map(|x| x.1).sum::<u64>(), 0);
        // The counters (not a pointer) are padded: one block per cache-line-aligned slot.
        assert_eq!(
            std::mem::size_of::<CachePadded<RxOutputCounters>>() % 64,
            0,
            "padded slot"
        );
        assert!(std::mem::size_of::<CachePadded<TxCounters>>() >= TxCounters::N * 8);
        // Names are unique within each reported table.
        for t in [RX_COUNTERS, TX_COUNTERS, HB_COUNTERS] {
            let mut v = t.to_vec();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), t.len());
        }
    }

    #[test]
    fn malformed_kinds_have_their_counters() {
        use crate::ingest::protocol::Malformed;
        for m in Malformed::ALL {
            assert!(RX_COUNTERS.contains(&m.name()), "{}", m.name());
        }
    }
}
