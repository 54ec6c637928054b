//! Counter tables of the engine's threads.

/// Receiver counters (published by `zmq_rx`).
pub const RX_COUNTERS: &[&str] = &[
    "messages",
    "data_msgs",
    "ttl_events",
    "spikes",
    "malformed",
    "blocks_emitted",
    "blocks_incomplete",
    "blocks_incomplete_upstream",
    "blocks_learning",
    "blocks_no_frame",
    "extra_channel_msgs",
    "upstream_missing_msgs",
    "upstream_sample_gaps",
    "upstream_missing_samples",
    "backward_jumps",
    "restarts",
    "stream_changes",
    "channel_set_changes",
    "data_timeouts",
    "dropped_newest",
    "block_waits",
    "channels",
    "sample_rate_mhz",
    "zmq_errors",
    "blocks_opened",
    "bad_envelope",
    "too_few_frames",
    "too_many_frames",
    "bad_header",
    "unknown_type",
    "bad_num_samples",
    "payload_length",
    "channel_out_of_range",
    "bad_sample_rate",
    "block_size_mismatch",
    "duplicate_channel",
    "bad_event",
    "bad_spike",
    "late_msgs",
    "blocks_filled",
    "rows_filled",
];
pub(crate) const RX_MALFORMED_BASE: usize = 25;

/// Shard counters (published by each `osc_tx_N`).
pub const TX_COUNTERS: &[&str] = &[
    "frames",
    "dropped_oldest",
    "frames_skipped",
    "rows",
    "datagrams",
    "bytes",
    "oversize",
    "group_samples_discarded",
    "timer_flushes",
    "forced_flushes",
    "batches",
    "sent",
    "send_dropped",
    "refused",
    "would_block_dropped",
    "too_big",
    "other_errors",
    "syscalls",
    "gso_batches",
    "gso_fallbacks",
    "queued",
    "group_samples_pending",
    "split_messages",
    "ttl_sent",
    "spikes_sent",
    "status_sent",
    "notices_sent",
    // Written by the receiver (not the shard): what it dropped or waited for this output.
    "dropped_newest",
    "block_waits",
];
pub(crate) const TX_DROPPED_NEWEST: usize = 27;
pub(crate) const TX_BLOCK_WAITS: usize = 28;

/// Heartbeat counters (published by `zmq_hb`).
pub const HB_COUNTERS: &[&str] = &[
    "sent",
    "replies",
    "resets",
    "state",
    "data_connects",
    "data_disconnects",
    "data_handshake_failures",
    "data_manual_reconnects",
];

/// Heartbeat states as published in the `state` counter.
pub const HB_STATES: [&str; 4] = ["connecting", "online", "not_responding", "reconnecting"];
