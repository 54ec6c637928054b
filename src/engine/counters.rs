//! How each thread publishes its own tallies into its own counter block (defined in
//! [`crate::telemetry::counters`]): plain integers on the thread, `Relaxed` stores into the
//! block now and then, one writer per block. No counter is written by two threads.

use crate::ingest::assembler::Assembler;
use crate::ingest::protocol::Malformed;
use crate::net::UdpSender;
use crate::output::OutputPipeline;
use crate::telemetry::counters::{HbCounters, RxCounters, RxOutputCounters, TxCounters};

/// Receiver-side tallies that are not the assembler's.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RxTallies {
    pub(crate) messages: u64,
    pub(crate) zmq_errors: u64,
    pub(crate) ttl_events: u64,
    pub(crate) spikes: u64,
}

/// What the receiver did for one output.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OutputTallies {
    pub(crate) dropped_newest: u64,
    pub(crate) block_waits: u64,
}

/// A receiver publishes its source's block and the per-output blocks of its outputs
/// (`outputs`: each output's tallies with its block).
pub(crate) fn publish_rx<'a>(
    r: &RxCounters,
    asm: &Assembler,
    t: RxTallies,
    outputs: impl Iterator<Item = (&'a OutputTallies, &'a RxOutputCounters)> + Clone,
) {
    let c = &asm.counters;
    let m = |k: Malformed| c.malformed[k as usize];
    r.messages.set(t.messages);
    r.data_msgs.set(c.data_msgs);
    r.ttl_events.set(t.ttl_events);
    r.spikes.set(t.spikes);
    r.malformed.set(c.malformed_total());
    r.blocks_emitted.set(c.blocks_emitted);
    r.blocks_incomplete.set(c.blocks_incomplete);
    r.blocks_incomplete_upstream
        .set(c.blocks_incomplete_upstream);
    r.blocks_learning.set(c.blocks_learning);
    r.blocks_no_frame.set(c.blocks_no_frame);
    r.extra_channel_msgs.set(c.extra_channel_msgs);
    r.upstream_missing_msgs.set(c.upstream_missing_msgs);
    r.upstream_sample_gaps.set(c.upstream_sample_gaps);
    r.upstream_missing_samples.set(c.upstream_missing_samples);
    r.backward_jumps.set(c.backward_jumps);
    r.restarts.set(c.restarts);
    r.stream_changes.set(c.stream_changes);
    r.channel_set_changes.set(c.channel_set_changes);
    r.data_timeouts.set(c.data_timeouts);
    r.dropped_newest
        .set(outputs.clone().map(|(o, _)| o.dropped_newest).sum());
    r.block_waits
        .set(outputs.clone().map(|(o, _)| o.block_waits).sum());
    r.channels.set(asm.channel_set().len() as u64);
    r.sample_rate_mhz
        .set(asm.stream().map_or(0, |(_, rate)| (rate * 1000.0) as u64));
    r.zmq_errors.set(t.zmq_errors);
    r.blocks_opened.set(c.blocks_opened);
    r.bad_envelope.set(m(Malformed::BadEnvelope));
    r.too_few_frames.set(m(Malformed::TooFewFrames));
    r.too_many_frames.set(m(Malformed::TooManyFrames));
    r.bad_header.set(m(Malformed::BadHeader));
    r.unknown_type.set(m(Malformed::UnknownType));
    r.bad_num_samples.set(m(Malformed::BadNumSamples));
    r.payload_length.set(m(Malformed::PayloadLength));
    r.channel_out_of_range.set(m(Malformed::ChannelOutOfRange));
    r.bad_sample_rate.set(m(Malformed::BadSampleRate));
    r.block_size_mismatch.set(m(Malformed::BlockSizeMismatch));
    r.duplicate_channel.set(m(Malformed::DuplicateChannel));
    r.bad_event.set(m(Malformed::BadEvent));
    r.bad_spike.set(m(Malformed::BadSpike));
    r.late_msgs.set(c.late_msgs);
    r.blocks_filled.set(c.blocks_filled);
    r.rows_filled.set(c.rows_filled);
    r.headers_repaired.set(c.headers_repaired);
    r.headers_json.set(c.headers_json);
    r.blocks_held_late.set(c.blocks_held_late);
    r.blocks_hold_overflow.set(c.blocks_hold_overflow);
    for (o, block) in outputs {
        block.dropped_newest.set(o.dropped_newest);
        block.block_waits.set(o.block_waits);
    }
}

/// An `osc_tx_N` publishes its block.
pub(crate) fn publish_tx(
    c: &TxCounters,
    p: &OutputPipeline,
    sender: &UdpSender,
    dropped_oldest: u64,
    queued: usize,
) {
    let o = &p.counters;
    let s = sender.stats();
    c.frames.set(o.frames);
    c.dropped_oldest.set(dropped_oldest);
    c.frames_skipped.set(o.frames_skipped);
    c.rows.set(o.rows);
    c.datagrams.set(o.datagrams);
    c.bytes.set(o.bytes);
    c.oversize.set(o.oversize);
    c.dsp_unsupported.set(o.dsp_unsupported);
    c.group_samples_discarded.set(o.group_samples_discarded);
    c.timer_flushes.set(o.timer_flushes);
    c.forced_flushes.set(o.forced_flushes);
    c.batches.set(o.batches);
    c.sent.set(s.datagrams_sent);
    c.send_dropped.set(s.dropped());
    c.refused.set(s.refused);
    c.would_block_dropped.set(s.would_block_dropped);
    c.too_big.set(s.too_big);
    c.other_errors.set(s.other_errors);
    c.syscalls.set(s.syscalls);
    c.gso_batches.set(s.gso_batches);
    c.gso_fallbacks.set(s.gso_fallbacks);
    c.queued.set(queued as u64);
    c.group_samples_pending
        .set(p.pending_group_samples() as u64);
    c.split_messages.set(o.split_messages);
    c.ttl_sent.set(o.ttl_sent);
    c.spikes_sent.set(o.spikes_sent);
    c.status_sent.set(o.status_sent);
    c.notices_sent.set(o.notices_sent);
}

/// Heartbeat tallies.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HbTallies {
    pub(crate) sent: u64,
    pub(crate) replies: u64,
    pub(crate) resets: u64,
    pub(crate) state: u64,
}

/// `zmq_hb` publishes its block.
pub(crate) fn publish_hb(c: &HbCounters, t: HbTallies, mon: &super::heartbeat::MonitorCounts) {
    c.sent.set(t.sent);
    c.replies.set(t.replies);
    c.resets.set(t.resets);
    c.state.set(t.state);
    c.data_connects.set(mon.connects);
    c.data_disconnects.set(mon.disconnects);
    c.data_handshake_failures.set(mon.handshake_failures);
    c.data_manual_reconnects.set(mon.manual_reconnects);
}
