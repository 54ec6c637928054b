//! A receiver thread `zmq_rx` (one per source): ZMQ SUB receive, header parsing, frame assembly, hand-off to the shards.

use super::counters::{publish_rx, OutputTallies, RxTallies};
use super::record::RecordTap;
use super::{wall_ms, Shared};
use crate::config::OverflowStrategy;
use crate::frame::{EventBuffer, Frame};
use crate::ingest::assembler::{Assembler, FrameIo, Reject};
use crate::ingest::protocol::{self, Envelope, Header, HeaderPath, Malformed};
use crate::net::RateLimitedLog;
use crate::output::layout::{cut, NAME_CAP, STREAM_CAP};
use crate::telemetry::latency::{span, Latencies, LatencyPublisher};
use rtrb::{Consumer, Producer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

pub(crate) struct ShardLink {
    pub(crate) ring: Producer<Arc<Frame>>,
    pub(crate) ret: Consumer<Arc<Frame>>,
    pub(crate) thread: Thread,
    /// The output's index (its counter blocks in [`crate::telemetry::counters::Stats`]).
    pub(crate) output: usize,
    /// What the receiver dropped or waited for on this output (published into the
    /// receiver's own per-output block, never into the shard's).
    pub(crate) tallies: OutputTallies,
}

pub(crate) struct RxIo {
    pub(crate) free: Vec<Arc<Frame>>,
    pub(crate) links: Vec<ShardLink>,
    pub(crate) policy: OverflowStrategy,
    pub(crate) shared: Arc<Shared>,
    /// This receiver's source (its counter blocks in `shared`).
    pub(crate) source: usize,
    /// This source's layout board.
    pub(crate) layout: Arc<crate::output::LayoutBoard>,
    /// TTL events and spikes waiting to ride on the next frame.
    pub(crate) events: EventBuffer,
    pub(crate) events_since: Option<Instant>,
    /// Current stream name and OE channel names (updated when they change), each with its
    /// capacity reserved at start-up ([`STREAM_CAP`], [`NAME_CAP`]) and cut to it, so
    /// learning a name never allocates.
    pub(crate) stream: String,
    pub(crate) names: Vec<String>,
    pub(crate) published_generation: Option<u32>,
}

impl RxIo {
    /// Takes a frame back from a shard: onto the free list once no shard holds it.
    fn reclaim(&mut self, mut f: Arc<Frame>) {
        if Arc::get_mut(&mut f).is_some() {
            self.free.push(f);
        }
        // else: another shard still reads it and will return its own handle; dropping this
        // one only decrements the count (the last handle always comes back here).
    }

    fn recycle(&mut self) {
        for i in 0..self.links.len() {
            while let Ok(f) = self.links[i].ret.pop() {
                self.reclaim(f);
            }
        }
    }

    /// Publishes stream and channel names for a new layout (on layout changes only).
    fn publish_layout(&mut self, f: &Frame) {
        // Events-only frames carry no layout; never publish from them.
        if f.num_samples == 0 || self.published_generation == Some(f.layout_generation) {
            return;
        }
        self.published_generation = Some(f.layout_generation);
        // A seqlock write into buffers sized at start-up: no lock, no allocation.
        let names = &self.names;
        self.layout.publish(
            f.layout_generation,
            f.sample_rate,
            &f.channels,
            &self.stream,
            |c| names.get(c as usize).map_or("", String::as_str),
        );
    }

    /// Sends pending events on their own when no block is coming to carry them.
    fn flush_events(&mut self, now: Instant) {
        if self.events.is_empty()
            || self
                .events_since
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(50))
        {
            return;
        }
        let Some(mut frame) = self.take() else { return };
        if let Some(f) = Arc::get_mut(&mut frame) {
            f.seq = 0;
            f.num_samples = 0;
            f.channels.clear();
            f.arrival = now;
            f.header_timestamp_ms = None;
        }
        self.events_since = None;
        self.emit(frame);
    }
}

impl FrameIo for RxIo {
    /// A frame for a newly opened block: it takes the events received before the block's
    /// first message (the plugin sends a block's events first).
    fn take(&mut self) -> Option<Arc<Frame>> {
        if self.free.is_empty() {
            self.recycle();
        }
        let mut frame = self.free.pop()?;
        if let Some(f) = Arc::get_mut(&mut frame) {
            if self.events.is_empty() {
                f.events.clear();
            } else {
                self.events.move_into(f);
                self.events_since = None;
            }
        }
        Some(frame)
    }
    /// A dropped block's frame: its events still go out (as an events-only frame).
    fn give(&mut self, mut frame: Arc<Frame>) {
        let has_events = Arc::get_mut(&mut frame).is_some_and(|f| {
            if f.events.is_empty() {
                return false;
            }
            f.seq = 0;
            f.num_samples = 0;
            f.channels.clear();
            true
        });
        if has_events {
            self.emit(frame);
        } else {
            self.reclaim(frame);
        }
    }
    fn emit(&mut self, frame: Arc<Frame>) {
        self.publish_layout(&frame);
        let n = self.links.len();
        for i in 0..n {
            // One handle per shard (an atomic increment, no allocation).
            let mut handle = Arc::clone(&frame);
            loop {
                match self.links[i].ring.push(handle) {
                    Ok(()) => {
                        self.links[i].thread.unpark();
                        break;
                    }
                    Err(rtrb::PushError::Full(h)) => {
                        if self.policy != OverflowStrategy::Block
                            || self.shared.stop.load(Ordering::Relaxed)
                        {
                            // drop_newest, or drop_oldest with the shard stalled past the
                            // ring's headroom: this output loses the new block.
                            if h.num_samples > 0 {
                                self.links[i].tallies.dropped_newest += 1;
                            }
                            self.reclaim(h);
                            break;
                        }
                        // block: stop reading ZMQ until the shard makes room; ZeroMQ's
                        // high-water mark then drops upstream (visible as message_num gaps).
                        self.links[i].tallies.block_waits += 1;
                        self.links[i].thread.unpark();
                        handle = h;
                        self.recycle();
                        thread::park_timeout(Duration::from_micros(200));
                    }
                }
            }
        }
        // Our own handle: back to the free list if every shard dropped the frame, else
        // released (the shards return theirs through the rings).
        self.reclaim(frame);
    }
}

fn publish(shared: &Shared, asm: &Assembler, io: &RxIo, t: RxTallies) {
    publish_rx(
        &shared.rx[io.source],
        asm,
        t,
        io.links
            .iter()
            .map(|l| (&l.tallies, &*shared.rx_out[l.output])),
    );
}

/// Receives the next frame into `scratch` (recorded; `usize::MAX` when the receive failed), then
/// drains the rest of the message: (bytes of that frame, frames after it).
fn recv_payload(
    sub: &zmq::Socket,
    scratch: &mut [u8],
    tap: &mut Option<RecordTap>,
) -> (usize, usize) {
    let got = sub.recv_into(scratch, 0).unwrap_or(usize::MAX);
    taped(tap, scratch, got);
    (got, drain(sub, scratch, tap))
}

/// Receives the rest of a multipart message into `scratch` (discarding it).
pub(crate) fn drain(sub: &zmq::Socket, scratch: &mut [u8], tap: &mut Option<RecordTap>) -> usize {
    let mut n = 0;
    while sub.get_rcvmore().unwrap_or(false) {
        let Ok(got) = sub.recv_into(scratch, 0) else {
            break;
        };
        taped(tap, scratch, got);
        n += 1;
    }
    n
}

/// One received frame (`got` bytes into `buf`) to `--record`. A frame longer than its
/// buffer (only malformed messages are) or a failed receive cannot be recorded faithfully:
/// the message is left out of the recording and counted as not recorded.
#[inline]
fn taped(tap: &mut Option<RecordTap>, buf: &[u8], got: usize) {
    if let Some(t) = tap {
        match buf.get(..got) {
            Some(bytes) => t.frame(bytes),
            None => t.cut(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_receiver(
    shared: Arc<Shared>,
    sub: zmq::Socket,
    endpoint: &str,
    mut asm: Assembler,
    mut io: RxIo,
    max_block: usize,
    spin: Duration,
    verbose: bool,
    mut lat_pub: LatencyPublisher,
    mut tap: Option<RecordTap>,
) -> Latencies {
    let max_channels = io.names.len();
    let source = io.source;
    let mut lat = Latencies::new();
    let mut env = [0u8; 16];
    let mut hdr = vec![0u8; 64 * 1024];
    let mut scratch = vec![0u8; (max_block * 4).max(64 * 1024)];
    let mut tally = RxTallies::default();
    let mut block_first: Option<(i64, Instant)> = None;
    let mut idle_since: Option<Instant> = None;
    let mut log = RateLimitedLog::default();
    crate::hot::mark_current_thread_hot();
    // Counters and latency histograms go to the controller together.
    macro_rules! publish {
        ($now:expr) => {
            publish(&shared, &asm, &io, tally);
            lat_pub.maybe_publish(&mut lat, $now);
        };
    }

    while !shared.stop.load(Ordering::Relaxed) {
        let n = match sub.recv_into(&mut env, zmq::DONTWAIT) {
            Ok(n) => n,
            Err(zmq::Error::EAGAIN) => {
                if let Some(t) = tap.as_mut() {
                    t.end();
                }
                let now = Instant::now();
                io.recycle();
                asm.poll(now, &mut io);
                if !asm.has_open_block() {
                    io.flush_events(now);
                }
                if shared.sources[source]
                    .reconnect_data
                    .swap(false, Ordering::Relaxed)
                {
                    let _ = sub.disconnect(endpoint);
                    if let Err(e) = sub.connect(endpoint) {
                        tally.zmq_errors += 1;
                        if verbose {
                            eprintln!("zmq_rx: reconnect to {endpoint} failed: {e}");
                        }
                    }
                }
                let since = *idle_since.get_or_insert(now);
                if super::idle_backoff(now.duration_since(since), spin) {
                    continue;
                }
                publish!(now);
                // Park in zmq_poll until data, the next deadline, or 10 ms.
                let mut wait = asm.next_deadline().map_or(10, |d| {
                    d.saturating_duration_since(now).as_millis().clamp(1, 10) as i64
                });
                if !io.events.is_empty() {
                    wait = wait.min(5);
                }
                let mut items = [sub.as_poll_item(zmq::POLLIN)];
                let _ = zmq::poll(&mut items, wait);
                continue;
            }
            Err(zmq::Error::ETERM) => break,
            Err(e) => {
                tally.zmq_errors += 1;
                if verbose
                    && log
                        .admit(crate::net::LogKind::Other, Instant::now())
                        .is_some()
                {
                    eprintln!("zmq_rx: receive error: {e}");
                }
                // A persistent error must not spin a core.
                thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        idle_since = None;
        if let Some(t) = tap.as_mut() {
            // Closes the previous message and opens this one.
            t.start();
        }
        taped(&mut tap, &env, n);
        tally.messages += 1;
        let now = Instant::now();
        shared.last_message_ms[source].store(wall_ms() as u64, Ordering::Relaxed);
        if tally.messages.is_multiple_of(1024) {
            publish!(now);
            // No asm.poll() here: deadlines only apply once the socket is drained, so a
            // receiver descheduled for a while never drops a block whose rest is queued.
        }
        let more = sub.get_rcvmore().unwrap_or(false);
        let envelope = if n <= env.len() {
            protocol::parse_envelope(&env[..n])
        } else {
            None
        };
        let Some(envelope) = envelope else {
            asm.counters.count(Malformed::BadEnvelope);
            drain(&sub, &mut scratch, &mut tap);
            continue;
        };
        if !more {
            asm.counters.count(Malformed::TooFewFrames);
            continue;
        }
        let hn = match sub.recv_into(&mut hdr, 0) {
            Ok(hn) => {
                // Before parsing: a repair writes into `hdr`.
                taped(&mut tap, &hdr, hn);
                hn
            }
            Err(_) => {
                tally.zmq_errors += 1;
                drain(&sub, &mut scratch, &mut tap);
                continue;
            }
        };
        let more = sub.get_rcvmore().unwrap_or(false);
        // The plugin's exact DATA layout is scanned; anything else takes the full JSON parse
        // (counted), and a header cut by the GUI's non-ASCII length bug is repaired in place
        // (counted).
        let parsed = if hn <= hdr.len() {
            protocol::parse_header_fast(&mut hdr, hn).map(|(h, path)| {
                match path {
                    HeaderPath::Scanned => {}
                    HeaderPath::Parsed => asm.counters.headers_json += 1,
                    HeaderPath::Repaired => {
                        asm.counters.headers_json += 1;
                        asm.counters.headers_repaired += 1;
                    }
                }
                h
            })
        } else {
            Err(Malformed::BadHeader)
        };
        let h = match parsed {
            Ok(h) => h,
            Err(k) => {
                asm.counters.count(k);
                if more {
                    drain(&sub, &mut scratch, &mut tap);
                }
                continue;
            }
        };
        asm.observe_message_num(h.message_num(), now, &mut io);
        match (envelope, h) {
            (Envelope::Data, Header::Data(d)) => {
                if !more {
                    asm.counters.count(Malformed::TooFewFrames);
                    continue;
                }
                // Names for address templates and notices (copied only when they change).
                let stream = cut(&d.stream, STREAM_CAP);
                if io.stream != stream {
                    io.stream.clear();
                    io.stream.push_str(stream);
                }
                if let (Some(name), Some(slot)) = (
                    d.channel_name.as_deref(),
                    usize::try_from(d.channel_num)
                        .ok()
                        .and_then(|c| io.names.get_mut(c)),
                ) {
                    let name = cut(name, NAME_CAP);
                    if slot != name {
                        slot.clear();
                        slot.push_str(name);
                    }
                }
                match block_first {
                    Some((s, _)) if s == d.sample_num => {}
                    _ => block_first = Some((d.sample_num, now)),
                }
                match asm.begin_data(&d, now, &mut io) {
                    Ok(row) => {
                        let got = sub.recv_into(row, 0).unwrap_or(usize::MAX);
                        taped(&mut tap, row, got);
                        let extra = sub.get_rcvmore().unwrap_or(false);
                        let before = asm.counters.blocks_emitted;
                        let _ = asm.end_data(got, extra, now, &mut io);
                        if extra {
                            drain(&sub, &mut scratch, &mut tap);
                        }
                        if asm.counters.blocks_emitted != before {
                            if let Some((_, first)) = block_first {
                                lat.record(
                                    span::BLOCK_SPREAD,
                                    now.duration_since(first).as_nanos() as u64,
                                );
                            }
                        }
                    }
                    Err(reject) => {
                        drain(&sub, &mut scratch, &mut tap);
                        // Above a configured cap: say which cap, at most once a second (the
                        // message is only formatted when it is printed).
                        let cap = match reject {
                            Reject::Malformed(Malformed::ChannelOutOfRange) => Some((
                                "channel_num",
                                d.channel_num,
                                "performance.max_channels",
                                max_channels as i64,
                            )),
                            Reject::Malformed(Malformed::BadNumSamples) if d.num_samples > 0 => {
                                Some((
                                    "num_samples",
                                    d.num_samples,
                                    "performance.max_block_samples",
                                    max_block as i64,
                                ))
                            }
                            _ => None,
                        };
                        if let Some((what, value, key, limit)) = cap {
                            if verbose && log.admit(crate::net::LogKind::TooBig, now).is_some() {
                                eprintln!(
                                    "zmq_rx: dropped a message with {what} {value}: the cap is {key} = {limit} \
                                     (raise it in the config if this is real data); counted as malformed"
                                );
                            }
                        }
                    }
                }
            }
            (Envelope::Event, Header::Event(e)) => {
                if e.data_size > 0 || more {
                    if !more {
                        asm.counters.count(Malformed::TooFewFrames);
                        continue;
                    }
                    let (got, extra) = recv_payload(&sub, &mut scratch, &mut tap);
                    if extra > 0 {
                        asm.counters.count(Malformed::TooManyFrames);
                    } else if e.event_type == 3 && got.min(scratch.len()) == 10 {
                        if let Ok(t) = protocol::parse_ttl(&scratch[..10]) {
                            tally.ttl_events += 1;
                            if io.events.push_ttl(e.sample_num, t.line, t.state, t.word) {
                                io.events_since.get_or_insert(now);
                            }
                        }
                    } else if e.event_type == 3 || got as i64 != e.data_size {
                        asm.counters.count(Malformed::BadEvent);
                    }
                }
            }
            (Envelope::Event, Header::Spike(s)) => {
                if !more {
                    asm.counters.count(Malformed::TooFewFrames);
                    continue;
                }
                let (got, extra) = recv_payload(&sub, &mut scratch, &mut tap);
                let want = s
                    .num_channels
                    .checked_mul(s.num_samples)
                    .and_then(|v| v.checked_mul(4));
                if extra > 0 {
                    asm.counters.count(Malformed::TooManyFrames);
                } else if want != Some(got as i64) || got > scratch.len() || s.num_channels < 0 {
                    asm.counters.count(Malformed::BadSpike);
                } else {
                    tally.spikes += 1;
                    if io.events.push_spike(
                        s.sample_num,
                        &s.electrode,
                        s.sorted_id,
                        s.num_channels as usize,
                        s.num_samples as usize,
                        &scratch[..got],
                    ) {
                        io.events_since.get_or_insert(now);
                    }
                }
            }
            _ => {
                asm.counters.count(Malformed::UnknownType);
                if more {
                    drain(&sub, &mut scratch, &mut tap);
                }
            }
        }
    }
    if let Some(t) = tap.as_mut() {
        t.end();
    }
    // Stop: emit a complete open block and pending events, then hang up (shards drain and
    // finish).
    asm.flush(&mut io);
    io.events_since = None;
    io.flush_events(Instant::now());
    publish(&shared, &asm, &io, tally);
    drop(io);
    lat
}
