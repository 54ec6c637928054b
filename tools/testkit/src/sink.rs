//! OSC receiver / verifier for stress tools and tests.
//!
//! A [`Sink`] binds a UDP socket, receives the OSC datagrams the bridge emits
//! (`{base}/sample` or `{base}/batch/<k>`, see reference-spec §3.8), decodes them with an
//! allocation-free parser ([`parse_osc_message`]) and checks every value against the
//! deterministic test signal ([`pattern_value`]) after the bridge's downsampling
//! (reference-spec §3.7). It counts delivered, lost, duplicated, reordered and torn rows and,
//! when a [`BlockClock`] is shared with the simulator, measures end-to-end latency.
//!
//! # Sequence tracking
//!
//! Rows are identified by the absolute index `s` of the first input sample of their group
//! (`s = a + r·F`, `a` = phase). The signal only carries `s mod wrap`; the sink maps it back to
//! an absolute index by continuity (the candidate closest to the expected next index, i.e. a
//! signed distance `d` in `(-wrap/2, wrap/2]`). Then:
//! * `d == 0`: in order;
//! * `d > 0` and a multiple of `F`: `d / F` rows lost (forward jumps up to `wrap/2`);
//! * `d < 0` and within [`HISTORY_ROWS`] rows: duplicated (row already seen) or reordered (row
//!   not seen yet; it had been counted as lost, so `lost_rows` is decremented);
//! * a backward jump beyond the history, or a jump that is not a multiple of `F` (phase
//!   change): discontinuity — the phase is re-inferred and nothing is counted as lost.
//!
//! Rows that never arrive after the last received row cannot be detected (the sink does not
//! know how many rows were sent); callers compare `rows` with what they sent.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{fence, AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Backward window (in rows) within which a late row is classified as duplicated/reordered
/// instead of a discontinuity.
pub const HISTORY_ROWS: usize = 4096;

/// Receive timeout of the receiver thread; bounds how long [`Sink::stop`] takes.
const RECV_TIMEOUT: Duration = Duration::from_millis(50);

/// Maximum number of decoding candidates kept per value (average mode can be ambiguous).
const MAX_CANDS: usize = 16;

/// 2^24: every signal value is an integer below this, hence exact in `f32`.
const VALUE_LIMIT: u64 = 1 << 24;

// ---------------------------------------------------------------------------------------------
// Test signal
// ---------------------------------------------------------------------------------------------

/// Wrap length of the test signal for channels `0..=max_channel_num`:
/// `2^24 / next_power_of_two(max_channel_num + 1)` (at least 1).
pub fn pattern_wrap(max_channel_num: u32) -> u32 {
    let n = (u64::from(max_channel_num) + 1).next_power_of_two();
    (VALUE_LIMIT / n).max(1) as u32
}

/// Test-signal value of OE channel `ch` at absolute sample index `j`:
/// `(ch * wrap + (j mod wrap)) as f32` (`wrap == 0` is treated as 1).
pub fn pattern_value(wrap: u32, ch: u32, j: i64) -> f32 {
    let w = wrap.max(1);
    let jm = j.rem_euclid(i64::from(w)) as u64;
    (u64::from(ch) * u64::from(w) + jm) as f32
}

// ---------------------------------------------------------------------------------------------
// Configuration and report
// ---------------------------------------------------------------------------------------------

/// OSC message layout the bridge emits (reference-spec §3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `{base}/sample`, `,f…f`: one row per datagram.
    #[default]
    Sample,
    /// `{base}/batch/<k>`, `,i f…f`: int32 N then N·k floats, channel-major.
    Batch,
    /// Any stream: no value check. Counts messages per address, rows (`…/sample` = 1,
    /// `…/batch/<k>` = k), sizes, gaps and reorders from the sample-number arguments (two
    /// ints, hi/lo, when the output sends them) and inter-arrival times; see
    /// [`AnyStats`].
    Any,
}

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

/// Downsampling method of the bridge (reference-spec §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// f32 sequential sum of the F samples, then f32 division by F.
    #[default]
    Average,
    /// Sample F−1 of each group.
    Decimate,
}

/// Configuration of a [`Sink`].
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Address to bind (`127.0.0.1:0` for tests).
    pub bind: SocketAddr,
    /// Requested `SO_RCVBUF` in bytes (0 = leave the OS default); see
    /// [`Sink::effective_recv_buffer`] for what the kernel granted.
    pub recv_buffer_bytes: usize,
    /// OSC base address, e.g. `/data`.
    pub base_address: String,
    /// Expected message layout; messages of the other layout count as `wrong_address`.
    pub layout: Layout,
    /// Expected OE channel numbers, strictly ascending (position i of a row = `channels[i]`).
    pub channels: Vec<u32>,
    /// Signal wrap length ([`pattern_wrap`] of the largest channel number).
    pub wrap: u32,
    /// Downsampling factor F (≥ 1, < `wrap`).
    pub factor: u32,
    /// Downsampling method (ignored when `factor == 1`).
    pub method: Method,
    /// Send times of simulator blocks, for latency measurement.
    pub block_clock: Option<Arc<BlockClock>>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            recv_buffer_bytes: 8 << 20,
            base_address: "/data".to_string(),
            layout: Layout::Sample,
            channels: Vec::new(),
            wrap: pattern_wrap(0),
            factor: 1,
            method: Method::Average,
            block_clock: None,
        }
    }
}

/// Counters of a [`Sink`] (live snapshot or final).
#[derive(Debug, Clone, Default)]
pub struct SinkReport {
    /// UDP datagrams received (all, including malformed).
    pub datagrams: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Datagrams that are not a valid OSC message of the expected shape (or were truncated).
    pub malformed: u64,
    /// Valid OSC messages with an address other than the configured layout's.
    pub wrong_address: u64,
    /// Output time points received (sample: 1 per datagram; batch: k per datagram).
    pub rows: u64,
    /// Rows whose every value matched the expected channel and sample and were in order.
    pub clean_rows: u64,
    /// Expected rows never received (gaps in the row sequence; reduced again when a missing
    /// row arrives late).
    pub lost_rows: u64,
    /// Rows received again.
    pub duplicated_rows: u64,
    /// Rows received after a later row (late, not seen before).
    pub reordered_rows: u64,
    /// Rows whose values come from different samples.
    pub torn_rows: u64,
    /// Values that decode to the wrong channel or fail the exact recomputation (plus values
    /// missing from / in excess of the expected channel count).
    pub bad_values: u64,
    /// Restarts of the sequence handled by re-inferring the phase (not counted as loss).
    pub discontinuities: u64,
    /// This socket's kernel drops (Linux: `SO_RXQ_OVFL` counter and, at stop, the
    /// `/proc/net/udp` `drops` column; 0 elsewhere).
    pub kernel_drops: u64,
    /// Largest number of values per row seen in a well-formed message.
    pub channels_seen: usize,
    /// Arrival time of the first datagram.
    pub first_at: Option<Instant>,
    /// Arrival time of the last datagram.
    pub last_at: Option<Instant>,
    /// [`Layout::Any`] statistics (empty in the other layouts).
    pub any: AnyStats,
    /// End-to-end latency in ns (block sent → datagram received), one entry per non-duplicate
    /// row whose last input sample was found in the [`BlockClock`]; `None` without a clock.
    pub latency: Option<Histogram<u64>>,
}

// ---------------------------------------------------------------------------------------------
// BlockClock
// ---------------------------------------------------------------------------------------------

struct ClockEntry {
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

// ---------------------------------------------------------------------------------------------
// OSC parsing (allocation-free)
// ---------------------------------------------------------------------------------------------

/// One OSC message borrowed from a datagram.
#[derive(Debug, Clone, Copy)]
pub struct OscMessage<'a> {
    /// Address pattern (starts with `/`).
    pub address: &'a str,
    /// Type tags without the leading `,`.
    pub type_tags: &'a [u8],
    /// Argument bytes (sizes already validated against the type tags).
    pub args: &'a [u8],
}

/// One decoded OSC argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OscArg<'a> {
    /// `i`: int32.
    Int(i32),
    /// `f`: float32.
    Float(f32),
    /// Any other type tag with its raw argument bytes.
    Other(u8, &'a [u8]),
}

/// Iterator over the arguments of an [`OscMessage`].
#[derive(Debug, Clone)]
pub struct OscArgs<'a> {
    tags: &'a [u8],
    args: &'a [u8],
}

impl<'a> Iterator for OscArgs<'a> {
    type Item = OscArg<'a>;
    fn next(&mut self) -> Option<OscArg<'a>> {
        let (&t, rest) = self.tags.split_first()?;
        self.tags = rest;
        let n = arg_size(t, self.args)?;
        let (b, rest) = self.args.split_at(n);
        self.args = rest;
        Some(match t {
            b'i' => OscArg::Int(i32::from_be_bytes(b.try_into().ok()?)),
            b'f' => OscArg::Float(f32::from_be_bytes(b.try_into().ok()?)),
            _ => OscArg::Other(t, b),
        })
    }
}

impl<'a> OscMessage<'a> {
    /// Iterator over the arguments.
    pub fn args(&self) -> OscArgs<'a> {
        OscArgs {
            tags: self.type_tags,
            args: self.args,
        }
    }
}

/// Splits an OSC-string (NUL-terminated, zero-padded to 4) off the front of `b`.
fn osc_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = b.iter().position(|&c| c == 0)?;
    let end = (nul + 4) & !3;
    let pad = b.get(nul..end)?;
    if pad.iter().any(|&c| c != 0) {
        return None;
    }
    Some((&b[..nul], &b[end..]))
}

/// Size in bytes of one argument of type `t` at the front of `rest`, if it fits.
fn arg_size(t: u8, rest: &[u8]) -> Option<usize> {
    let n = match t {
        b'i' | b'f' | b'c' | b'r' | b'm' => 4,
        b'h' | b'd' | b't' => 8,
        b'T' | b'F' | b'N' | b'I' | b'[' | b']' => 0,
        b's' | b'S' => {
            let (s, _) = osc_string(rest)?;
            (s.len() + 4) & !3
        }
        b'b' => {
            let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
            let len = usize::try_from(len).ok()?;
            4usize.checked_add(len.checked_add(3)? & !3)?
        }
        _ => return None,
    };
    (n <= rest.len()).then_some(n)
}

/// Parses one OSC message (not a bundle). Requires a 4-byte-aligned length, an address
/// starting with `/`, a type-tag string, zero padding, known type tags and argument data that
/// exactly fills the datagram. Never panics.
pub fn parse_osc_message(data: &[u8]) -> Option<OscMessage<'_>> {
    if data.len() & 3 != 0 || data.first() != Some(&b'/') {
        return None;
    }
    let (addr, rest) = osc_string(data)?;
    let address = std::str::from_utf8(addr).ok()?;
    if rest.first() != Some(&b',') {
        return None;
    }
    let (tags, args) = osc_string(rest)?;
    let type_tags = &tags[1..];
    let mut off = 0usize;
    for &t in type_tags {
        off += arg_size(t, &args[off..])?;
    }
    (off == args.len()).then_some(OscMessage {
        address,
        type_tags,
        args,
    })
}

fn be_f32(b: &[u8], off: usize) -> f32 {
    match b.get(off..off.wrapping_add(4)) {
        Some(x) => f32::from_be_bytes([x[0], x[1], x[2], x[3]]),
        None => f32::NAN,
    }
}

// ---------------------------------------------------------------------------------------------
// Verifier (pure; no I/O)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct CandSet {
    n: usize,
    v: [u32; MAX_CANDS],
}

impl CandSet {
    /// Adds `s`; when full, keeps the candidates closest (circularly) to `reference`.
    fn push(&mut self, s: u32, reference: u32, w: i64) {
        if self.contains(s) {
            return;
        }
        if self.n < MAX_CANDS {
            self.v[self.n] = s;
            self.n += 1;
            return;
        }
        let dist = |x: u32| circ(i64::from(x) - i64::from(reference), w).abs();
        let (far, far_d) = self.v[..self.n]
            .iter()
            .enumerate()
            .map(|(i, &x)| (i, dist(x)))
            .fold((0, -1), |acc, x| if x.1 > acc.1 { x } else { acc });
        if dist(s) < far_d {
            self.v[far] = s;
        }
    }
    fn contains(&self, s: u32) -> bool {
        self.v[..self.n].contains(&s)
    }
}

/// Signed circular distance in `(-w/2, w/2]`.
fn circ(d: i64, w: i64) -> i64 {
    let r = d.rem_euclid(w);
    if r > w / 2 {
        r - w
    } else {
        r
    }
}

struct Verifier {
    channels: Vec<u32>,
    wrap: u32,
    w: i64,
    f: i64,
    method: Method,
    layout: Layout,
    sample_addr: String,
    batch_prefix: String,
    clock: Option<Arc<BlockClock>>,
    /// Sink-frame absolute start index of the next expected row.
    expected: Option<i64>,
    /// Start index of the first row of the current epoch (phase).
    epoch_base: i64,
    /// Ring of row numbers seen, indexed by row number mod HISTORY_ROWS.
    seen: Vec<i64>,
    cands: Vec<CandSet>,
    counts: HashMap<u32, u32>,
    report: SinkReport,
}

/// Outcome of a row's value check.
struct RowCheck {
    s_mod: Option<u32>,
    torn: bool,
    bad: u64,
}

impl Verifier {
    fn new(cfg: &SinkConfig) -> Self {
        let base = cfg.base_address.trim_end_matches('/');
        let latency = cfg
            .block_clock
            .as_ref()
            .and_then(|_| Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).ok());
        Verifier {
            channels: cfg.channels.clone(),
            wrap: cfg.wrap,
            w: i64::from(cfg.wrap.max(1)),
            f: i64::from(cfg.factor.max(1)),
            method: cfg.method,
            layout: cfg.layout,
            sample_addr: format!("{base}/sample"),
            batch_prefix: format!("{base}/batch/"),
            clock: cfg.block_clock.clone(),
            expected: None,
            epoch_base: 0,
            seen: vec![i64::MIN; HISTORY_ROWS],
            cands: vec![CandSet::default(); cfg.channels.len()],
            counts: HashMap::new(),
            report: SinkReport {
                latency,
                ..SinkReport::default()
            },
        }
    }

    /// Exact value the bridge emits for channel `ch` and the group starting at `s`.
    fn group_value(&self, ch: u32, s: i64) -> f32 {
        if self.f == 1 {
            return pattern_value(self.wrap, ch, s);
        }
        match self.method {
            Method::Decimate => pattern_value(self.wrap, ch, s + self.f - 1),
            Method::Average => {
                // Same values as pattern_value(wrap, ch, s + i), without a division per sample.
                let chw = u64::from(ch) * self.w as u64;
                let mut jm = s.rem_euclid(self.w) as u64;
                let w = self.w as u64;
                let mut acc = (chw + jm) as f32;
                for _ in 1..self.f {
                    jm += 1;
                    if jm == w {
                        jm = 0;
                    }
                    acc += (chw + jm) as f32;
                }
                acc / self.f as f32
            }
        }
    }

    /// Group starts `s` (mod wrap) for which channel `ch` yields exactly `v`. Average mode can
    /// be ambiguous (rounding of large sums); if more than [`MAX_CANDS`] match, those closest
    /// to `hint` (else to the estimate) are kept.
    fn candidates(&self, ch: u32, v: f32, hint: Option<u32>) -> CandSet {
        let mut out = CandSet::default();
        if !v.is_finite() {
            return out;
        }
        let (w, f) = (self.w, self.f);
        let chw = i64::from(ch) * w;
        let matches = |s: i64| self.group_value(ch, s).to_bits() == v.to_bits();
        if f == 1 || self.method == Method::Decimate {
            if !(0.0..VALUE_LIMIT as f32).contains(&v) || v.fract() != 0.0 {
                return out;
            }
            let u = v as i64;
            if u < chw || u >= chw + w {
                return out; // wrong channel
            }
            let s = (u - chw - (f - 1)).rem_euclid(w);
            if matches(s) {
                out.push(s as u32, 0, w);
            }
            return out;
        }
        // Average. Non-straddling groups (s ..= s+F-1 within one wrap period): the mean is
        // ≈ ch·wrap + s + (F−1)/2, the f32 sequential sum being off by at most ~F index units.
        let x = f64::from(v) - chw as f64 - (f - 1) as f64 / 2.0;
        let rad = f + 4;
        if x > -(rad as f64) - 2.0 && x < (w + rad) as f64 + 2.0 {
            let est = x.round() as i64;
            let reference = hint.unwrap_or(est.rem_euclid(w) as u32);
            for d in 0..=rad {
                for s in [est + d, est - d] {
                    if (0..=w - f).contains(&s) && matches(s) {
                        out.push(s as u32, reference, w);
                    }
                }
            }
        }
        // Straddling groups s = wrap − m (m in 1..F): the exact mean is
        // ch·wrap + (m·(wrap − F) + F(F−1)/2) / F, linear in m.
        if w > f {
            let m_est = (f as f64 * (f64::from(v) - chw as f64) - (f * (f - 1)) as f64 / 2.0)
                / (w - f) as f64;
            if m_est > -(f as f64) && m_est < 2.0 * f as f64 {
                let m0 = m_est.round() as i64;
                let rad_m = f * f / (w - f) + 3;
                for m in (m0 - rad_m).max(1)..=(m0 + rad_m).min(f - 1) {
                    if matches(w - m) {
                        out.push((w - m) as u32, hint.unwrap_or((w - m0) as u32), w);
                    }
                }
            }
        }
        out
    }

    /// Checks the values of one row; `get(i)` is the value at position i (< `n`).
    fn check_row(&mut self, get: &impl Fn(usize) -> f32, n: usize) -> RowCheck {
        // Fast path: exactly the expected row.
        let hint = self.expected.map(|e| e.rem_euclid(self.w));
        if let Some(em) = hint {
            if (0..n).all(|i| self.group_value(self.channels[i], em).to_bits() == get(i).to_bits())
            {
                return RowCheck {
                    s_mod: Some(em as u32),
                    torn: false,
                    bad: 0,
                };
            }
        }
        // Slow path: decode every value, take the group start most values agree on.
        self.counts.clear();
        for i in 0..n {
            let c = self.candidates(self.channels[i], get(i), hint.map(|h| h as u32));
            self.cands[i] = c;
            for &s in &c.v[..c.n] {
                *self.counts.entry(s).or_insert(0) += 1;
            }
        }
        let w = self.w;
        let dist = |s: u32| hint.map_or(0, |h| circ(i64::from(s) - h, w).abs());
        let best = self
            .counts
            .iter()
            .map(|(&s, &c)| (s, c))
            .max_by(|a, b| {
                a.1.cmp(&b.1)
                    .then(dist(b.0).cmp(&dist(a.0)))
                    .then(b.0.cmp(&a.0))
            })
            .map(|(s, _)| s);
        let Some(s) = best else {
            return RowCheck {
                s_mod: None,
                torn: false,
                bad: n as u64,
            };
        };
        // Judge each value by exact recomputation for `s` (candidate sets may be truncated).
        let mut torn = false;
        let mut bad = 0;
        for i in 0..n {
            if self.cands[i].n == 0 {
                bad += 1;
            } else if self.group_value(self.channels[i], i64::from(s)).to_bits() != get(i).to_bits()
            {
                torn = true;
            }
        }
        RowCheck {
            s_mod: Some(s),
            torn,
            bad,
        }
    }

    fn row_number(&self, abs: i64) -> i64 {
        (abs - self.epoch_base).div_euclid(self.f)
    }

    fn slot(&self, row: i64) -> usize {
        row.rem_euclid(HISTORY_ROWS as i64) as usize
    }

    fn start_epoch(&mut self, abs: i64) {
        self.epoch_base = abs;
        self.seen.fill(i64::MIN);
    }

    /// Records an in-order (or after-gap / after-restart) row at `abs`.
    fn accept_in_order(&mut self, abs: i64, ok: bool, now: Instant) {
        if ok {
            self.report.clean_rows += 1;
        }
        let row = self.row_number(abs);
        let slot = self.slot(row);
        self.seen[slot] = row;
        self.expected = Some(abs + self.f);
        self.record_latency(abs, now);
    }

    fn record_latency(&mut self, abs: i64, now: Instant) {
        let Some(clock) = &self.clock else { return };
        let last_mod = (abs + self.f - 1).rem_euclid(self.w);
        let Some(latest) = clock.latest_sample() else {
            return;
        };
        // The row's last input sample, in the simulator's absolute frame: the index ≡ last_mod
        // not after the newest recorded sample. Rows more than half a wrap behind are assumed
        // to belong to a block not recorded yet and are skipped.
        let back = latest.saturating_sub(last_mod).rem_euclid(self.w);
        if back > self.w / 2 {
            return;
        }
        if let Some(sent) = clock.lookup(latest.saturating_sub(back)) {
            let ns = now.saturating_duration_since(sent).as_nanos();
            if let Some(h) = &mut self.report.latency {
                h.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
            }
        }
    }

    fn process_row(&mut self, get: impl Fn(usize) -> f32, n_values: usize, now: Instant) {
        self.report.rows += 1;
        let n = n_values.min(self.channels.len());
        let extra = n_values.abs_diff(self.channels.len()) as u64;
        let chk = self.check_row(&get, n);
        self.report.bad_values += chk.bad + extra;
        let Some(s_mod) = chk.s_mod else {
            // Undecodable row: assume it occupies the expected slot.
            if let Some(e) = self.expected {
                self.accept_in_order(e, false, now);
            }
            return;
        };
        if chk.torn {
            self.report.torn_rows += 1;
        }
        let ok = !chk.torn && chk.bad == 0 && extra == 0;
        let Some(e) = self.expected else {
            let abs = i64::from(s_mod);
            self.start_epoch(abs);
            self.accept_in_order(abs, ok, now);
            return;
        };
        let d = circ(i64::from(s_mod) - e, self.w);
        let abs = e + d;
        let f = self.f;
        if d.rem_euclid(f) != 0 || (d < 0 && -d > HISTORY_ROWS as i64 * f) {
            self.report.discontinuities += 1;
            self.start_epoch(abs);
            self.accept_in_order(abs, ok, now);
        } else if d >= 0 {
            self.report.lost_rows += (d / f) as u64;
            self.accept_in_order(abs, ok, now);
        } else {
            let row = self.row_number(abs);
            let slot = self.slot(row);
            if self.seen[slot] == row {
                self.report.duplicated_rows += 1;
            } else {
                self.report.reordered_rows += 1;
                if abs >= self.epoch_base {
                    self.report.lost_rows = self.report.lost_rows.saturating_sub(1);
                }
                self.seen[slot] = row;
                self.record_latency(abs, now);
            }
        }
    }

    /// Handles one received datagram.
    fn handle_datagram(&mut self, data: &[u8], truncated: bool, now: Instant) {
        let r = &mut self.report;
        r.datagrams += 1;
        r.bytes += data.len() as u64;
        r.first_at.get_or_insert(now);
        r.last_at = Some(now);
        if truncated {
            r.malformed += 1;
            return;
        }
        let Some(msg) = parse_osc_message(data) else {
            r.malformed += 1;
            return;
        };
        match self.layout {
            Layout::Sample if msg.address == self.sample_addr => {
                let n = msg.type_tags.len();
                if n == 0 || msg.type_tags.iter().any(|&t| t != b'f') {
                    self.report.malformed += 1;
                    return;
                }
                self.report.channels_seen = self.report.channels_seen.max(n);
                let args = msg.args;
                self.process_row(|c| be_f32(args, 4 * c), n, now);
            }
            Layout::Batch if msg.address.starts_with(&self.batch_prefix) => {
                let Some((n, k)) = batch_shape(&msg, &self.batch_prefix) else {
                    self.report.malformed += 1;
                    return;
                };
                self.report.channels_seen = self.report.channels_seen.max(n);
                let args = msg.args;
                for r in 0..k {
                    self.process_row(|c| be_f32(args, 4 + 4 * (c * k + r)), n, now);
                }
            }
            Layout::Any => {
                self.report.any.handle(&msg, data.len(), now);
                self.report.rows = self.report.any.rows;
            }
            _ => self.report.wrong_address += 1,
        }
    }
}

/// Validates a batch message; returns (N channels, k rows).
fn batch_shape(msg: &OscMessage<'_>, prefix: &str) -> Option<(usize, usize)> {
    let ks = msg.address.get(prefix.len()..)?;
    if ks.is_empty() || ks.len() > 9 || !ks.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let k: usize = ks.parse().ok()?;
    let (&first, rest) = msg.type_tags.split_first()?;
    if k == 0 || first != b'i' || rest.iter().any(|&t| t != b'f') {
        return None;
    }
    let n = i32::from_be_bytes(msg.args.get(..4)?.try_into().ok()?);
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    (n.checked_mul(k)? == rest.len()).then_some((n, k))
}

// ---------------------------------------------------------------------------------------------
// Sink (socket + receiver thread)
// ---------------------------------------------------------------------------------------------

struct Shared {
    state: Mutex<Verifier>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Verifier> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running OSC receiver/verifier (see the module docs).
pub struct Sink {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    local: SocketAddr,
    effective_rcvbuf: usize,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("local", &self.local)
            .field("effective_rcvbuf", &self.effective_rcvbuf)
            .finish()
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn validate(cfg: &SinkConfig) -> io::Result<()> {
    if cfg.layout == Layout::Any {
        return Ok(());
    }
    if cfg.channels.is_empty() {
        return Err(invalid("sink: no channels configured"));
    }
    if cfg.channels.windows(2).any(|p| p[0] >= p[1]) {
        return Err(invalid("sink: channels must be strictly ascending"));
    }
    if cfg.factor == 0 || cfg.wrap <= cfg.factor {
        return Err(invalid("sink: need 1 <= factor < wrap"));
    }
    let max_ch = u64::from(*cfg.channels.last().unwrap_or(&0));
    if (max_ch + 1) * u64::from(cfg.wrap) > VALUE_LIMIT {
        return Err(invalid(
            "sink: (max channel + 1) * wrap exceeds 2^24 (values not exact in f32)",
        ));
    }
    Ok(())
}

impl Sink {
    /// Binds the socket and starts the receiver thread `osc_sink`.
    pub fn start(cfg: SinkConfig) -> io::Result<Sink> {
        use socket2::{Domain, Protocol, Socket, Type};
        validate(&cfg)?;
        let sock = Socket::new(
            Domain::for_address(cfg.bind),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if cfg.recv_buffer_bytes > 0 {
            // A refused size is not fatal: the effective size is reported.
            let _ = sock.set_recv_buffer_size(cfg.recv_buffer_bytes);
        }
        sock.bind(&cfg.bind.into())?;
        let effective_rcvbuf = sock.recv_buffer_size().unwrap_or(0);
        sock.set_read_timeout(Some(RECV_TIMEOUT))?;
        #[cfg(target_os = "linux")]
        linux::enable_rxq_ovfl(&sock);
        let sock: UdpSocket = sock.into();
        let local = sock.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Verifier::new(&cfg)),
            cond: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("osc_sink".into())
            .spawn(move || run(sock, &sh, &st))?;
        Ok(Sink {
            shared,
            stop,
            thread: Some(thread),
            local,
            effective_rcvbuf,
        })
    }

    /// The bound address (with the actual port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `SO_RCVBUF` as read back after setting it (Linux reports twice the granted request).
    pub fn effective_recv_buffer(&self) -> usize {
        self.effective_rcvbuf
    }

    /// Live snapshot of the counters.
    pub fn report(&self) -> SinkReport {
        self.shared.lock().report.clone()
    }

    /// Waits until at least `n` rows were received or `timeout` elapsed; true if reached.
    pub fn wait_for_rows(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(|r| r.rows >= n, timeout)
    }

    fn wait_until(&self, pred: impl Fn(&SinkReport) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.lock();
        loop {
            if pred(&g.report) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .shared
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the receiver thread (within ~50 ms) and returns the final report.
    pub fn stop(mut self) -> SinkReport {
        self.shutdown();
        self.report()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(sock: UdpSocket, shared: &Shared, stop: &AtomicBool) {
    #[cfg(target_os = "linux")]
    {
        let ino = linux::socket_inode(&sock);
        linux::recv_loop(&sock, shared, stop);
        if let Some(d) = ino.and_then(linux::proc_udp_drops) {
            let mut g = shared.lock();
            g.report.kernel_drops = g.report.kernel_drops.max(d);
        }
    }
    #[cfg(not(target_os = "linux"))]
    recv_loop_portable(&sock, shared, stop);
    shared.cond.notify_all();
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(not(target_os = "linux"))]
fn recv_loop_portable(sock: &UdpSocket, shared: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let now = Instant::now();
                shared.lock().handle_datagram(&buf[..n], false, now);
                shared.cond.notify_all();
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::os::fd::AsRawFd;

    const BATCH: usize = 64;
    const BUF: usize = 64 * 1024;
    const CTRL_WORDS: usize = 8; // 64 bytes of control data per message

    /// Asks the kernel to attach the socket's drop counter to received messages.
    pub(super) fn enable_rxq_ovfl(sock: &socket2::Socket) {
        let one: libc::c_int = 1;
        // SAFETY: `sock` is an open socket for the duration of the call; the option value
        // points to a live c_int whose size is passed as the length.
        let _ = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RXQ_OVFL,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    /// Inode of the socket (for /proc/net/udp), via /proc/self/fd.
    pub(super) fn socket_inode(sock: &UdpSocket) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd()))
            .ok()
            .map(|m| m.ino())
    }

    /// The `drops` column of /proc/net/udp{,6} for the socket with inode `ino`.
    pub(super) fn proc_udp_drops(ino: u64) -> Option<u64> {
        for path in ["/proc/net/udp", "/proc/net/udp6"] {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() >= 13 && cols[9].parse::<u64>().ok() == Some(ino) {
                    return cols[12].parse().ok();
                }
            }
        }
        None
    }

    pub(super) fn recv_loop(sock: &UdpSocket, shared: &Shared, stop: &AtomicBool) {
        let fd = sock.as_raw_fd();
        let mut bufs = vec![0u8; BATCH * BUF];
        let mut ctrl = vec![0u64; BATCH * CTRL_WORDS];
        let mut iovs: Vec<libc::iovec> = (0..BATCH)
            .map(|_| libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = (0..BATCH)
            // SAFETY: mmsghdr is a plain C struct of integers and raw pointers, for which the
            // all-zero bit pattern is valid (null pointers, zero lengths).
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        while !stop.load(Ordering::Acquire) {
            // Re-derive all pointers each round so they are fresh when the kernel writes.
            let bp = bufs.as_mut_ptr();
            for (i, iov) in iovs.iter_mut().enumerate() {
                iov.iov_base = bp.wrapping_add(i * BUF).cast();
                iov.iov_len = BUF;
            }
            let ip = iovs.as_mut_ptr();
            let cp = ctrl.as_mut_ptr();
            for (i, h) in hdrs.iter_mut().enumerate() {
                h.msg_len = 0;
                h.msg_hdr.msg_name = std::ptr::null_mut();
                h.msg_hdr.msg_namelen = 0;
                h.msg_hdr.msg_iov = ip.wrapping_add(i);
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = cp.wrapping_add(i * CTRL_WORDS).cast();
                h.msg_hdr.msg_controllen = (CTRL_WORDS * 8) as _;
                h.msg_hdr.msg_flags = 0;
            }
            // SAFETY: `hdrs` holds BATCH valid mmsghdr; each points to one iovec describing a
            // distinct, live BUF-byte region of `bufs` and to a distinct live 64-byte region of
            // `ctrl`. None of these vectors is touched or moved during the call. The timeout
            // pointer is null (SO_RCVTIMEO bounds the wait for the first message).
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            let now = Instant::now();
            if n < 0 {
                let e = io::Error::last_os_error();
                if !is_timeout(&e) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            let n = (n as usize).min(BATCH);
            let mut drops: Option<u64> = None;
            for h in &hdrs[..n] {
                // SAFETY: the kernel filled msg_control/msg_controllen of this header; the CMSG
                // macros only walk within [msg_control, msg_control + msg_controllen), which
                // lies inside `ctrl`; the data is read unaligned after checking its length.
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    while !c.is_null() {
                        if (*c).cmsg_level == libc::SOL_SOCKET
                            && (*c).cmsg_type == libc::SO_RXQ_OVFL
                            && (*c).cmsg_len as usize >= libc::CMSG_LEN(4) as usize
                        {
                            let d = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>());
                            drops = Some(drops.unwrap_or(0).max(u64::from(d)));
                        }
                        c = libc::CMSG_NXTHDR(&h.msg_hdr, c);
                    }
                }
            }
            let mut g = shared.lock();
            for (i, h) in hdrs[..n].iter().enumerate() {
                let len = (h.msg_len as usize).min(BUF);
                let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                g.handle_datagram(&bufs[i * BUF..i * BUF + len], truncated, now);
            }
            if let Some(d) = drops {
                g.report.kernel_drops = g.report.kernel_drops.max(d);
            }
            drop(g);
            shared.cond.notify_all();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    // ---- test-side signal and encoder (independent of the code under test) ----

    fn tv(wrap: u32, ch: u32, j: i64) -> f32 {
        let w = i64::from(wrap);
        (i64::from(ch) * w + j.rem_euclid(w)) as f32
    }

    fn t_row(wrap: u32, chans: &[u32], f: u32, m: Method, s: i64) -> Vec<f32> {
        chans
            .iter()
            .map(|&ch| match (f, m) {
                (1, _) => tv(wrap, ch, s),
                (_, Method::Decimate) => tv(wrap, ch, s + i64::from(f) - 1),
                (_, Method::Average) => {
                    let mut acc = tv(wrap, ch, s);
                    for i in 1..i64::from(f) {
                        acc += tv(wrap, ch, s + i);
                    }
                    acc / f as f32
                }
            })
            .collect()
    }

    fn put_str(o: &mut Vec<u8>, s: &[u8]) {
        o.extend_from_slice(s);
        o.push(0);
        while o.len() & 3 != 0 {
            o.push(0);
        }
    }

    fn enc_sample(base: &str, vals: &[f32]) -> Vec<u8> {
        let mut o = Vec::new();
        put_str(&mut o, format!("{base}/sample").as_bytes());
        let mut tags = vec![b','];
        tags.resize(1 + vals.len(), b'f');
        put_str(&mut o, &tags);
        for v in vals {
            o.extend_from_slice(&v.to_be_bytes());
        }
        o
    }

    fn enc_batch(base: &str, rows: &[Vec<f32>]) -> Vec<u8> {
        let k = rows.len();
        let n = rows[0].len();
        let mut o = Vec::new();
        put_str(&mut o, format!("{base}/batch/{k}").as_bytes());
        let mut tags = b",i".to_vec();
        tags.resize(2 + n * k, b'f');
        put_str(&mut o, &tags);
        o.extend_from_slice(&(n as i32).to_be_bytes());
        for c in 0..n {
            for row in rows {
                o.extend_from_slice(&row[c].to_be_bytes());
            }
        }
        o
    }

    fn cfg(chans: Vec<u32>, layout: Layout, f: u32, m: Method) -> SinkConfig {
        let wrap = pattern_wrap(chans.last().copied().unwrap_or(0));
        SinkConfig {
            channels: chans,
            wrap,
            factor: f,
            method: m,
            layout,
            ..SinkConfig::default()
        }
    }

    /// Sends in chunks, waiting (condition, not sleep) until each chunk was received so the
    /// receive buffer can never overflow.
    fn send_paced(sink: &Sink, msgs: &[Vec<u8>]) {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = sink.report().datagrams;
        let mut sent = 0u64;
        for chunk in msgs.chunks(64) {
            for m in chunk {
                tx.send_to(m, sink.local_addr()).unwrap();
            }
            sent += chunk.len() as u64;
            let target = start + sent;
            assert!(
                sink.wait_until(|r| r.datagrams >= target, T),
                "sink did not receive {target} datagrams"
            );
        }
    }

    fn run(c: SinkConfig, msgs: &[Vec<u8>]) -> SinkReport {
        let sink = Sink::start(c).unwrap();
        assert!(sink.effective_recv_buffer() > 0);
        send_paced(&sink, msgs);
        sink.stop()
    }

    fn sample_msgs(c: &SinkConfig, starts: impl IntoIterator<Item = i64>) -> Vec<Vec<u8>> {
        starts
            .into_iter()
            .map(|s| enc_sample("/data", &t_row(c.wrap, &c.channels, c.factor, c.method, s)))
            .collect()
    }

    fn assert_anomalies_zero(r: &SinkReport) {
        assert_eq!(r.malformed, 0, "{r:?}");
        assert_eq!(r.wrong_address, 0, "{r:?}");
        assert_eq!(r.duplicated_rows, 0, "{r:?}");
        assert_eq!(r.reordered_rows, 0, "{r:?}");
        assert_eq!(r.torn_rows, 0, "{r:?}");
        assert_eq!(r.bad_values, 0, "{r:?}");
        assert_eq!(r.discontinuities, 0, "{r:?}");
    }

    // ---- signal ----

    #[test]
    fn signal_definition() {
        assert_eq!(pattern_wrap(0), 1 << 24);
        assert_eq!(pattern_wrap(15), 1 << 20);
        assert_eq!(pattern_wrap(16), 1 << 19);
        assert_eq!(pattern_wrap(31), 1 << 19);
        assert_eq!(pattern_wrap(u32::MAX), 1);
        let w = pattern_wrap(15);
        assert_eq!(pattern_value(w, 3, 5), (3 * w + 5) as f32);
        assert_eq!(pattern_value(w, 3, i64::from(w) + 5), (3 * w + 5) as f32);
        assert_eq!(pattern_value(w, 15, -1), (16 * w - 1) as f32);
        assert_eq!(pattern_value(0, 7, 9), 7.0); // wrap 0 treated as 1, no panic
        for j in [0i64, 1, 12345, 1 << 40] {
            assert_eq!(pattern_value(w, 15, j), tv(w, 15, j));
        }
    }

    // ---- parser ----

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn parses_spec_byte_vectors() {
        // reference-spec §3.8 captures (format only; their values are not our signal).
        let b = hex("2f646174 612f7361 6d706c65 00000000 2c666666 66000000 40400000 447ac000 44fa6000 453bb000");
        let m = parse_osc_message(&b).unwrap();
        assert_eq!(m.address, "/data/sample");
        assert_eq!(m.type_tags, b"ffff");
        let v: Vec<OscArg> = m.args().collect();
        assert_eq!(v, [3.0, 1003.0, 2003.0, 3003.0].map(OscArg::Float).to_vec());
        let b = hex("2f646174 612f6261 7463682f 33000000 2c696666 66666666 00000000 00000002 3f000000 40200000 40900000 447a2000 447aa000 447b2000");
        let m = parse_osc_message(&b).unwrap();
        assert_eq!(m.address, "/data/batch/3");
        let v: Vec<OscArg> = m.args().collect();
        assert_eq!(v[0], OscArg::Int(2));
        assert_eq!(v[1..4], [0.5, 2.5, 4.5].map(OscArg::Float));
        assert_eq!(v[6], OscArg::Float(1004.5));
        assert_eq!(batch_shape(&m, "/data/batch/"), Some((2, 3)));
        // our encoder produces the same bytes
        assert_eq!(
            enc_batch(
                "/data",
                &[vec![0.5, 1000.5], vec![2.5, 1002.5], vec![4.5, 1004.5]]
            ),
            b
        );
        let b = hex("2f636830 30300000 2c660000 3fc00000");
        assert_eq!(parse_osc_message(&b).unwrap().address, "/ch000");
        // other tags are size-checked
        let mut o = Vec::new();
        put_str(&mut o, b"/x");
        put_str(&mut o, b",sbhTi");
        put_str(&mut o, b"hello");
        o.extend_from_slice(&3i32.to_be_bytes());
        o.extend_from_slice(&[1, 2, 3, 0]);
        o.extend_from_slice(&7i64.to_be_bytes());
        o.extend_from_slice(&(-5i32).to_be_bytes());
        let m = parse_osc_message(&o).unwrap();
        let v: Vec<OscArg> = m.args().collect();
        assert_eq!(v.len(), 5);
        assert_eq!(v[4], OscArg::Int(-5));
        assert!(parse_osc_message(&o[..o.len() - 4]).is_none());
    }

    // ---- (1) F = 1, sample mode ----

    #[test]
    fn sample_mode_f1_clean() {
        let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
        assert_eq!(c.wrap, 1 << 20);
        let msgs = sample_msgs(&c, 5000..6000);
        let r = run(c, &msgs);
        assert_eq!(r.datagrams, 1000);
        assert_eq!(r.rows, 1000);
        assert_eq!(r.clean_rows, 1000, "{r:?}");
        assert_eq!(r.lost_rows, 0);
        assert_anomalies_zero(&r);
        assert_eq!(r.channels_seen, 16);
        assert_eq!(r.bytes, 1000 * (16 + 20 + 64));
        assert!(r.first_at.unwrap() <= r.last_at.unwrap());
        assert!(r.latency.is_none());
        assert_eq!(r.kernel_drops, 0);
    }

    // ---- (2) gaps, duplicates, torn rows, reordering, bad values, restarts ----

    #[test]
    fn sample_mode_gap_counts_lost() {
        let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
        let msgs = sample_msgs(&c, (0..1000).filter(|s| !(100..110).contains(s)));
        let r = run(c, &msgs);
        assert_eq!(r.rows, 990);
        assert_eq!(r.lost_rows, 10, "{r:?}");
        assert_eq!(r.clean_rows, 990);
        assert_anomalies_zero(&r);
    }

    #[test]
    fn sample_mode_duplicate() {
        let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
        let starts = (0..1000).flat_map(|s| if s == 500 { vec![s, s] } else { vec![s] });
        let msgs = sample_msgs(&c, starts);
        let r = run(c, &msgs);
        assert_eq!(r.rows, 1001);
        assert_eq!(r.duplicated_rows, 1, "{r:?}");
        assert_eq!(r.clean_rows, 1000);
        assert_eq!(r.lost_rows, 0);
        assert_eq!(r.reordered_rows + r.torn_rows + r.bad_values, 0);
    }

    #[test]
    fn sample_mode_torn_row() {
        let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
        let mut msgs = sample_msgs(&c, 0..1000);
        let mut row = t_row(c.wrap, &c.channels, 1, Method::Average, 300);
        row[5] = tv(c.wrap, 5, 700);
        msgs[300] = enc_sample("/data", &row);
        let r = run(c, &msgs);
        assert_eq!(r.torn_rows, 1, "{r:?}");
        assert_eq!(r.clean_rows, 999);
        assert_eq!(r.lost_rows, 0);
        assert_eq!(r.bad_values, 0);
        assert_eq!(r.duplicated_rows + r.reordered_rows + r.discontinuities, 0);
    }

    #[test]
    fn sample_mode_reorder_bad_values_and_restart() {
        let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
        let mut msgs = sample_msgs(&c, 100_000..101_000);
        msgs.swap(200, 201);
        let mut row = t_row(c.wrap, &c.channels, 1, Method::Average, 100_400);
        row[3] = tv(c.wrap, 9, 100_400); // another channel's value
        row[4] = 0.5; // not a signal value
        msgs[400] = enc_sample("/data", &row);
        // restart far behind: discontinuity, not loss
        msgs.extend(sample_msgs(&c, 0..50));
        let r = run(c, &msgs);
        assert_eq!(r.reordered_rows, 1, "{r:?}");
        assert_eq!(r.lost_rows, 0, "{r:?}");
        assert_eq!(r.bad_values, 2, "{r:?}");
        assert_eq!(r.torn_rows, 0);
        assert_eq!(r.discontinuities, 1);
        assert_eq!(r.rows, 1050);
        // not clean: row 200 (late) and row 400 (bad values)
        assert_eq!(r.clean_rows, 1048);
    }

    // ---- (3) batch mode, average F = 30, phase != 0, wrap straddle ----

    #[test]
    fn batch_mode_average_f30_straddles_wrap() {
        let c = cfg(vec![0, 1, 2, 3, 7, 31], Layout::Batch, 30, Method::Average);
        let w = i64::from(c.wrap);
        assert_eq!(w, 1 << 19);
        let a = 3 * w + (w - 1343); // phase: arbitrary absolute start
        let starts: Vec<i64> = (0..200).map(|r| a + 30 * r).collect();
        assert!(
            starts.iter().any(|s| s.rem_euclid(w) > w - 30),
            "a group must straddle the wrap point"
        );
        let rows: Vec<Vec<f32>> = starts
            .iter()
            .map(|&s| t_row(c.wrap, &c.channels, 30, Method::Average, s))
            .collect();
        // batch sizes: 10 x10, then partial flushes 3 and 7, then 9 x10
        let mut sizes = vec![10; 10];
        sizes.extend([3, 7]);
        sizes.extend(vec![10; 9]);
        let mut msgs = Vec::new();
        let mut i = 0;
        for k in sizes {
            msgs.push(enc_batch("/data", &rows[i..i + k]));
            i += k;
        }
        assert_eq!(i, 200);
        let r = run(c, &msgs);
        assert_eq!(r.datagrams, 21);
        assert_eq!(r.rows, 200);
        assert_eq!(r.clean_rows, 200, "{r:?}");
        assert_eq!(r.lost_rows, 0);
        assert_anomalies_zero(&r);
        assert_eq!(r.channels_seen, 6);
    }

    #[test]
    fn batch_mode_average_loss_and_torn() {
        let c = cfg(vec![0, 1, 2, 3, 7, 31], Layout::Batch, 30, Method::Average);
        let a = 17;
        let mut rows: Vec<Vec<f32>> = (0..100)
            .map(|r| t_row(c.wrap, &c.channels, 30, Method::Average, a + 30 * r))
            .collect();
        rows[55][2] = rows[70][2]; // torn
        let mut msgs: Vec<Vec<u8>> = rows.chunks(10).map(|b| enc_batch("/data", b)).collect();
        msgs.remove(3); // rows 30..40 lost
        let r = run(c, &msgs);
        assert_eq!(r.rows, 90);
        assert_eq!(r.lost_rows, 10, "{r:?}");
        assert_eq!(r.torn_rows, 1, "{r:?}");
        assert_eq!(r.clean_rows, 89);
        assert_eq!(r.bad_values + r.discontinuities + r.duplicated_rows, 0);
    }

    #[test]
    fn average_inversion_finds_every_group() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for (max_ch, f, n_random) in [(31u32, 30u32, 300), (31, 2, 100), (1023, 1000, 6)] {
            let wrap = pattern_wrap(max_ch);
            let c = SinkConfig {
                channels: vec![0, max_ch / 2, max_ch],
                wrap,
                factor: f,
                method: Method::Average,
                ..SinkConfig::default()
            };
            let v = Verifier::new(&c);
            let w = i64::from(wrap);
            let fi = i64::from(f);
            let mut starts: Vec<i64> = vec![0, 1, w / 2, w - fi, w - fi + 1, w - 2, w - 1];
            starts.extend((0..n_random).map(|_| rnd() as i64 % w));
            starts.extend((0..n_random / 4).map(|_| w - 1 - rnd() as i64 % fi.max(2)));
            for &ch in &c.channels {
                for &s in &starts {
                    let val = v.group_value(ch, s);
                    assert_eq!(val, t_row(wrap, &[ch], f, Method::Average, s)[0]);
                    // with a hint (the expected row in sequence tracking) the group is always
                    // found; for F = 1000 at high channels up to ~18 starts share one value, so
                    // the hint must be close.
                    let off = if f <= 30 { 3 * fi } else { 0 };
                    let hint = Some((s + off).rem_euclid(w) as u32);
                    let cs = v.candidates(ch, val, hint);
                    assert!(cs.contains(s as u32), "ch {ch} s {s} f {f}");
                    if f <= 30 {
                        // moderate F: found even without a hint
                        assert!(
                            v.candidates(ch, val, None).contains(s as u32),
                            "ch {ch} s {s}"
                        );
                    }
                    // and a value of another channel never decodes for this one
                    let other = if ch == 0 { max_ch } else { 0 };
                    assert_eq!(v.candidates(other, val, hint).n, 0);
                }
            }
        }
    }

    // ---- (4) decimate F = 2 ----

    #[test]
    fn sample_mode_decimate_f2() {
        let c = cfg(vec![0, 1, 2, 3], Layout::Sample, 2, Method::Decimate);
        let starts = (0..500).filter(|&r| r != 250).map(|r| 1 + 2 * r);
        let msgs = sample_msgs(&c, starts);
        // decimate emits sample F-1 of each group
        assert_eq!(
            msgs[0],
            enc_sample(
                "/data",
                &[
                    2.0,
                    (c.wrap + 2) as f32,
                    (2 * c.wrap + 2) as f32,
                    (3 * c.wrap + 2) as f32
                ]
            )
        );
        let r = run(c, &msgs);
        assert_eq!(r.rows, 499);
        assert_eq!(r.lost_rows, 1, "{r:?}");
        assert_eq!(r.clean_rows, 499);
        assert_anomalies_zero(&r);
    }

    // ---- (5) latency via BlockClock ----

    #[test]
    fn latency_from_block_clock() {
        let clock = Arc::new(BlockClock::new(4096));
        let mut c = cfg((0..8).collect(), Layout::Sample, 1, Method::Average);
        c.block_clock = Some(clock.clone());
        let sink = Sink::start(c.clone()).unwrap();
        let t0 = Instant::now();
        for b in 0..10 {
            clock.record(b * 100, 100, Instant::now());
        }
        // rows 1000..1100 belong to no recorded block: no latency sample for them
        let msgs = sample_msgs(&c, 0..1100);
        send_paced(&sink, &msgs);
        let r = sink.stop();
        let elapsed = t0.elapsed();
        assert_eq!(r.clean_rows, 1100, "{r:?}");
        let h = r.latency.unwrap();
        assert_eq!(h.len(), 1000);
        assert!(h.min() >= 1);
        assert!(
            h.max() <= elapsed.as_nanos() as u64 + 1_000_000,
            "max {} ns",
            h.max()
        );
    }

    #[test]
    fn latency_uses_block_of_last_input_sample() {
        let clock = Arc::new(BlockClock::new(16));
        let c = SinkConfig {
            channels: vec![0, 1],
            wrap: pattern_wrap(1),
            factor: 3,
            method: Method::Decimate,
            block_clock: Some(clock.clone()),
            ..SinkConfig::default()
        };
        let t0 = Instant::now();
        clock.record(0, 4, t0);
        clock.record(4, 4, t0 + Duration::from_secs(1));
        let mut v = Verifier::new(&c);
        // group 3..=5: last input sample 5 is in the second block
        let msg = enc_sample("/data", &t_row(c.wrap, &c.channels, 3, Method::Decimate, 3));
        v.handle_datagram(&msg, false, t0 + Duration::from_millis(1005));
        assert_eq!(v.report.clean_rows, 1);
        let h = v.report.latency.as_ref().unwrap();
        assert_eq!(h.len(), 1);
        let ms = h.max() as f64 / 1e6;
        assert!((ms - 5.0).abs() < 0.01, "{ms}");
    }

    #[test]
    fn block_clock_lookup_and_ring() {
        let clock = BlockClock::new(4);
        assert_eq!(clock.lookup(0), None);
        assert_eq!(clock.latest_sample(), None);
        let t0 = Instant::now();
        for b in 0..10i64 {
            clock.record(b * 100, 100, t0 + Duration::from_millis(b as u64));
        }
        assert_eq!(clock.latest_sample(), Some(999));
        assert_eq!(clock.lookup(950), Some(t0 + Duration::from_millis(9)));
        assert_eq!(clock.lookup(600), Some(t0 + Duration::from_millis(6)));
        assert_eq!(clock.lookup(599), None); // overwritten
        assert_eq!(clock.lookup(1000), None);
        assert_eq!(clock.lookup(-1), None);
        assert!(format!("{clock:?}").contains("capacity: 4"));
    }

    #[test]
    fn block_clock_concurrent_reads_are_consistent() {
        let clock = Arc::new(BlockClock::new(64));
        let t0 = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicU64::new(0));
        let reader = {
            let (clock, done, hits) = (clock.clone(), done.clone(), hits.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    if let Some(latest) = clock.latest_sample() {
                        let j = latest - 5;
                        if let Some(t) = clock.lookup(j) {
                            // block b covers samples 10b..10b+9 and was sent at t0 + b µs
                            assert_eq!(t, t0 + Duration::from_micros(j as u64 / 10));
                            hits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        };
        // keep writing until the reader has checked enough lookups (bounded)
        let mut b = 0u64;
        while b < 50_000_000 && (b < 100_000 || hits.load(Ordering::Relaxed) < 10_000) {
            clock.record(b as i64 * 10, 10, t0 + Duration::from_micros(b));
            b += 1;
        }
        done.store(true, Ordering::Release);
        reader.join().unwrap();
        assert!(hits.load(Ordering::Relaxed) >= 10_000);
    }

    // ---- (6) malformed datagrams ----

    #[test]
    fn malformed_datagrams_are_counted() {
        let c = cfg(vec![0, 1, 2, 3], Layout::Sample, 1, Method::Average);
        let valid = enc_sample("/data", &t_row(c.wrap, &c.channels, 1, Method::Average, 0));
        let mut wrong_tags = Vec::new();
        put_str(&mut wrong_tags, b"/data/sample");
        put_str(&mut wrong_tags, b",fi");
        wrong_tags.extend_from_slice(&[0; 8]);
        let mut unknown_tag = Vec::new();
        put_str(&mut unknown_tag, b"/data/sample");
        put_str(&mut unknown_tag, b",fx");
        unknown_tag.extend_from_slice(&[0; 8]);
        let mut bundle = b"#bundle\0".to_vec();
        bundle.extend_from_slice(&1u64.to_be_bytes());
        bundle.extend_from_slice(&(valid.len() as i32).to_be_bytes());
        bundle.extend_from_slice(&valid);
        let mut no_args = Vec::new();
        put_str(&mut no_args, b"/data/sample");
        put_str(&mut no_args, b",");
        let mut other = Vec::new();
        put_str(&mut other, b"/other");
        put_str(&mut other, b",f");
        other.extend_from_slice(&1f32.to_be_bytes());
        let mut with_extra = valid.clone();
        with_extra.push(0);
        let malformed: Vec<Vec<u8>> = vec![
            valid[..valid.len() - 4].to_vec(), // truncated
            wrong_tags,
            unknown_tag,
            with_extra, // not a multiple of 4
            Vec::new(), // empty datagram
            b"hello world!".to_vec(),
            bundle,
            b"/data/sample".to_vec(), // no terminating NUL
            no_args,
        ];
        let wrong: Vec<Vec<u8>> = vec![enc_batch("/data", &[vec![0.0; 4]]), other];
        let mut msgs = malformed.clone();
        msgs.extend(wrong);
        msgs.push(valid);
        let r = run(c, &msgs);
        assert_eq!(r.datagrams, 12);
        assert_eq!(r.malformed, malformed.len() as u64, "{r:?}");
        assert_eq!(r.wrong_address, 2);
        assert_eq!(r.rows, 1);
        assert_eq!(r.clean_rows, 1);
    }

    #[test]
    fn malformed_batches_and_odd_values() {
        let c = cfg(vec![0, 1], Layout::Batch, 1, Method::Average);
        let mut v = Verifier::new(&c);
        let now = Instant::now();
        let good = enc_batch(
            "/data",
            &[vec![0.0, c.wrap as f32], vec![1.0, (c.wrap + 1) as f32]],
        );
        // N says 3 but only 4 floats for k = 2
        let mut bad_n = good.clone();
        let off = bad_n.len() - 4 * 4 - 4;
        bad_n[off..off + 4].copy_from_slice(&3i32.to_be_bytes());
        let mut neg_n = good.clone();
        neg_n[off..off + 4].copy_from_slice(&(-2i32).to_be_bytes());
        let mut k0 = Vec::new();
        put_str(&mut k0, b"/data/batch/0");
        put_str(&mut k0, b",i");
        k0.extend_from_slice(&2i32.to_be_bytes());
        let mut kx = good.clone();
        kx[12] = b'x'; // "/data/batch/x"
        for m in [&bad_n, &neg_n, &k0, &kx] {
            v.handle_datagram(m, false, now);
        }
        v.handle_datagram(&good, true, now); // truncated by the kernel
        assert_eq!(v.report.malformed, 5);
        v.handle_datagram(&good, false, now);
        assert_eq!(v.report.rows, 2);
        assert_eq!(v.report.clean_rows, 2);
        // NaN / inf / negative / too many values: bad values, no panic
        let odd = enc_batch("/data", &[vec![f32::NAN, f32::INFINITY, -1.0]]);
        v.handle_datagram(&odd, false, now);
        assert_eq!(v.report.rows, 3);
        assert_eq!(v.report.bad_values, 3);
        assert_eq!(v.report.clean_rows, 2);
    }

    #[test]
    fn fuzzed_datagrams_never_panic() {
        let mut seed = 42u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let now = Instant::now();
        let cases = [
            cfg(vec![0, 1, 2, 3, 7, 31], Layout::Batch, 30, Method::Average),
            cfg((0..16).collect(), Layout::Sample, 1, Method::Average),
            cfg(vec![0, 5], Layout::Sample, 4, Method::Decimate),
        ];
        for c in cases {
            let rows: Vec<Vec<f32>> = (0..4)
                .map(|r| {
                    t_row(
                        c.wrap,
                        &c.channels,
                        c.factor,
                        c.method,
                        90 + r * i64::from(c.factor),
                    )
                })
                .collect();
            let valid = match c.layout {
                Layout::Batch => enc_batch("/data", &rows),
                Layout::Sample | Layout::Any => enc_sample("/data", &rows[0]),
            };
            let mut v = Verifier::new(&c);
            for len in 0..=valid.len() {
                v.handle_datagram(&valid[..len], false, now);
            }
            for _ in 0..300 {
                let mut m = valid.clone();
                for _ in 0..1 + rnd() % 4 {
                    let i = rnd() % m.len();
                    m[i] = rnd() as u8;
                }
                v.handle_datagram(&m, false, now);
                let g: Vec<u8> = (0..rnd() % 64).map(|_| rnd() as u8).collect();
                v.handle_datagram(&g, false, now);
            }
            assert!(v.report.datagrams > 600);
        }
    }

    // ---- misc ----

    #[test]
    fn config_validation_and_timeouts() {
        let bad = [
            cfg(vec![], Layout::Sample, 1, Method::Average),
            cfg(vec![2, 1], Layout::Sample, 1, Method::Average),
            cfg(vec![0], Layout::Sample, 0, Method::Average),
            SinkConfig {
                channels: vec![0, 16],
                wrap: pattern_wrap(15),
                ..SinkConfig::default()
            },
        ];
        for c in bad {
            assert_eq!(
                Sink::start(c).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        let sink = Sink::start(cfg(vec![0], Layout::Sample, 1, Method::Average)).unwrap();
        let t = Instant::now();
        assert!(!sink.wait_for_rows(1, Duration::from_millis(60)));
        assert!(t.elapsed() >= Duration::from_millis(60));
        let t = Instant::now();
        let r = sink.stop();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(r.datagrams, 0);
        // Drop without stop() also shuts the thread down
        drop(Sink::start(cfg(vec![0], Layout::Sample, 1, Method::Average)).unwrap());
    }

    /// Floods a tiny receive buffer, then sends single marker rows until one gets through:
    /// every row is either received or reported as a kernel drop, and the gaps match.
    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_drops_account_for_every_missing_row() {
        let mut c = cfg((0..256).collect(), Layout::Sample, 1, Method::Average);
        c.recv_buffer_bytes = 1; // kernel minimum
        let sink = Sink::start(c.clone()).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let flood = 20_000i64;
        for m in sample_msgs(&c, 0..flood) {
            tx.send_to(&m, sink.local_addr()).unwrap();
        }
        let mut next = flood;
        let mut through = false;
        for _ in 0..100 {
            tx.send_to(&sample_msgs(&c, [next])[0], sink.local_addr())
                .unwrap();
            next += 1;
            let target = next as u64;
            if sink.wait_until(
                |r| r.rows + r.lost_rows >= target,
                Duration::from_millis(200),
            ) {
                through = true;
                break;
            }
        }
        assert!(through);
        let r = sink.stop();
        assert!(r.kernel_drops > 0, "{r:?}");
        assert_eq!(r.rows + r.kernel_drops, next as u64, "{r:?}");
        assert_eq!(r.lost_rows, r.kernel_drops);
        assert_eq!(r.clean_rows, r.rows);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_udp_drops_for_own_socket() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ino = linux::socket_inode(&s).unwrap();
        assert_eq!(linux::proc_udp_drops(ino), Some(0));
    }

    #[test]
    fn any_layout_counts_rows_gaps_reorders_and_arrivals() {
        fn msg(addr: &str, floats: usize, sample: Option<i64>) -> Vec<u8> {
            // Like the bridge: the sample number (hi, lo) before the floats.
            let mut args = Vec::new();
            let mut tags = String::from(",");
            if let Some(s) = sample {
                args.push(((s >> 32) as i32).to_be_bytes().to_vec());
                args.push((s as i32).to_be_bytes().to_vec());
                tags.push_str("ii");
            }
            args.push(rosc_free_f(floats));
            tags.push_str(&"f".repeat(floats));
            let mut out = Vec::new();
            for t in [addr, tags.as_str()] {
                out.extend_from_slice(t.as_bytes());
                out.push(0);
                while out.len() % 4 != 0 {
                    out.push(0);
                }
            }
            for a in args {
                out.extend_from_slice(&a);
            }
            out
        }
        fn rosc_free_f(n: usize) -> Vec<u8> {
            (0..n).flat_map(|k| (k as f32).to_be_bytes()).collect()
        }
        let mut v = Verifier::new(&SinkConfig {
            layout: Layout::Any,
            ..SinkConfig::default()
        });
        let t0 = Instant::now();
        let mut t = t0;
        // Samples 10, 11, 12, (13, 14 lost), 15, 14 (late), 16; then a batch and a TTL.
        for s in [10, 11, 12, 15, 14, 16] {
            t += Duration::from_micros(50);
            v.handle_datagram(&msg("/data/sample", 4, Some(s)), false, t);
        }
        t += Duration::from_millis(20);
        v.handle_datagram(&msg("/data/batch/8", 9, None), false, t);
        v.handle_datagram(&msg("/data/ttl", 0, Some(3000)), false, t);
        let a = &v.report.any;
        assert_eq!(a.messages, 8);
        assert_eq!(a.rows, 6 + 8);
        assert_eq!(v.report.rows, 14);
        assert_eq!((a.gaps, a.gap_samples, a.reorders), (2, 3, 1));
        assert_eq!(a.numbered, 6);
        assert_eq!(a.arrival_hist[1], 5, "five 50 µs gaps");
        assert_eq!(a.arrival_hist[4], 1, "one 20 ms gap");
        assert!(a.max_gap_us >= 20_000);
        assert!(a.addresses.iter().any(|(k, n)| k == "/data/ttl" && *n == 1));
        assert!(a.min_bytes < a.max_bytes);
        assert!(a.histogram_text().contains("<100µs"));
    }
}
