//! Byte-faithful simulator of the Open Ephys GUI "ZMQ Interface" publisher.
//!
//! This module reproduces what the real plugin (main HEAD, as run inside GUI 1.0.1 / JUCE 8) puts on
//! the wire (reference spec §1, §2.1, §6):
//!
//! * a `PUB` (or `XPUB`, see [`SimConfig::wait_for_subscriber`]) socket on the data port and a `REP`
//!   heartbeat socket on data port + 1;
//! * multipart messages `DATA\0` / `EVENT\0` (NUL included) + JUCE-formatted JSON header (CRLF, 2-space
//!   indentation, fixed key order, no trailing newline) + little-endian `float32` payload;
//! * one DATA message per selected channel per block, ascending channel order, all sharing
//!   `sample_num`; TTL events of a block are sent before its data;
//! * `message_num` pre-incremented from 1 per acquisition, shared by data, events and spikes, with
//!   signed 32-bit wrap-around;
//! * heartbeat replies `heartbeat received` / `message correctly parsed` /
//!   `JSON message could not be read` (raw bytes, no NUL);
//! * the JUCE header-length bug: frame 1 is cut to the header's *character* count, so non-ASCII names
//!   produce a truncated (invalid) header, exactly like GUI 1.0.x (can be disabled per [`Publisher`]).
//!
//! Two levels are offered: [`Simulator`] (a self-timed acquisition on its own thread, with fault
//! injection) and [`Publisher`] (exact, message-by-message control for tests).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Envelope (frame 0) of continuous-data messages: `DATA` plus its C string terminator (5 bytes).
pub const DATA_ENVELOPE: &[u8] = b"DATA\0";
/// Envelope (frame 0) of TTL-event and spike messages: `EVENT` plus its C string terminator (6 bytes).
pub const EVENT_ENVELOPE: &[u8] = b"EVENT\0";
/// Heartbeat reply to valid JSON whose `type` is not `"event"` (18 bytes, no NUL).
pub const REPLY_HEARTBEAT: &[u8] = b"heartbeat received";
/// Heartbeat reply to valid JSON whose `type` is `"event"` (24 bytes, no NUL).
pub const REPLY_EVENT: &[u8] = b"message correctly parsed";
/// Heartbeat reply to a request that is not valid JSON (30 bytes, no NUL).
pub const REPLY_INVALID: &[u8] = b"JSON message could not be read";
/// `source_node` used by the simulator for TTL events (a File Reader / source processor id).
pub const TTL_SOURCE_NODE: i64 = 100;
/// `source_node` used by [`Publisher::send_spike`] (a Spike Detector processor id).
pub const SPIKE_SOURCE_NODE: i64 = 104;

/// Size of the plugin's heartbeat receive buffer: longer requests are truncated (spec §2.1).
const HEARTBEAT_BUFFER: usize = 64_000;
/// Granularity of every wait loop, so that `stop()` is honoured within a few tens of milliseconds.
const POLL_SLICE_MS: i64 = 20;
/// Final part of a pacing wait that is spun instead of slept.
const SPIN_WINDOW: Duration = Duration::from_micros(200);
/// Linger applied when the simulator ends by itself (max_blocks / duration), so the tail of the stream
/// still reaches connected subscribers after the socket is closed.
const NATURAL_END_LINGER_MS: i32 = 1000;

// ---------------------------------------------------------------------------------------------
// Block sizes and signals
// ---------------------------------------------------------------------------------------------

/// How many samples each simulated block carries.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockSize {
    /// What the GUI does with a File Reader source: `int(1024 * fs / 44100)` samples per block,
    /// constant (696 at 30 kHz, 928 at 40 kHz; spec §6.1).
    Gui,
    /// Every block has exactly this many samples (must be > 0).
    Fixed(usize),
    /// Blocks alternate between the two sizes, starting with the first (hardware-like 696/697).
    Alternating(usize, usize),
    /// Sizes drawn uniformly from `min..=max` by a deterministic PRNG seeded from [`Faults::seed`].
    Jitter {
        /// Smallest block (must be > 0).
        min: usize,
        /// Largest block (must be >= `min`).
        max: usize,
    },
}

impl BlockSize {
    /// The GUI block size for a sample rate: `int(1024 * fs / 44100)` (at least 1).
    pub fn gui_block(sample_rate: f64) -> usize {
        let n = (1024.0 * sample_rate / 44100.0).floor();
        if n.is_finite() && n >= 1.0 {
            n as usize
        } else {
            1
        }
    }
}

/// The values the simulator puts in the payload. `j` is the absolute stream sample index
/// (`sample_num + i`), `ch` the Open Ephys local channel number.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// `(ch * wrap + (j mod wrap)) as f32` — exact (every value distinct and exactly representable)
    /// while `ch * wrap + wrap <= 2^24`; see [`pattern_wrap`]. A `wrap` of 0 is treated as 1.
    Pattern {
        /// Period of the per-channel ramp.
        wrap: u32,
    },
    /// `ch * 1000 + j` (the acceptance vectors of spec §4.3), computed in `f64`, then rounded to `f32`.
    Ramp,
    /// `100 * sin(2π (10 + ch) j / fs)` µV. [`signal_value`] assumes fs = 30 kHz; the simulator uses
    /// the configured sample rate (see [`signal_value_fs`]).
    Sine,
}

/// The largest `wrap` such that [`Signal::Pattern`] is exact for channels `0..=max_channel_num`:
/// `2^24 / next_power_of_two(max_channel_num + 1)` (255 → 65536, 1023 → 16384, 7 → 2097152).
/// Never returns 0 (returns 1 when more than 2^24 channels are requested, where exactness is lost).
pub fn pattern_wrap(max_channel_num: u32) -> u32 {
    let p = (u64::from(max_channel_num) + 1).next_power_of_two();
    let w = (1u64 << 24) / p;
    w.max(1) as u32
}

/// Value of sample `j` of channel `ch` (for [`Signal::Sine`] with a 30 kHz sample rate).
pub fn signal_value(sig: &Signal, ch: u32, j: i64) -> f32 {
    signal_value_fs(sig, ch, j, 30_000.0)
}

/// Value of sample `j` of channel `ch` for a stream sampled at `sample_rate` Hz (only
/// [`Signal::Sine`] depends on the rate). This is what the [`Simulator`] sends.
pub fn signal_value_fs(sig: &Signal, ch: u32, j: i64, sample_rate: f64) -> f32 {
    match sig {
        Signal::Pattern { wrap } => {
            let w = i64::from((*wrap).max(1));
            let v = i64::from(ch) * w + j.rem_euclid(w);
            v as f32
        }
        Signal::Ramp => (f64::from(ch) * 1000.0 + j as f64) as f32,
        Signal::Sine => {
            if !(sample_rate.is_finite() && sample_rate > 0.0) {
                return 0.0;
            }
            let f = 10.0 + f64::from(ch);
            // Reduce the phase in whole periods of the (rational) frequency to keep precision.
            let cycles = f * j as f64 / sample_rate;
            let phase = cycles - cycles.floor();
            (100.0 * (std::f64::consts::TAU * phase).sin()) as f32
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration, statistics
// ---------------------------------------------------------------------------------------------

/// Fault injection for the [`Simulator`]. Block indices are 0-based and count every block of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability that a channel message is dropped (not sent). The plugin's counter is still
    /// incremented, so receivers see a `message_num` gap, like a PUB high-water-mark drop. Drawn from
    /// a deterministic PRNG seeded with `seed`. Values outside `0..=1` are clamped; NaN means 0.
    pub drop_probability: f64,
    /// Seed for the drop PRNG and for [`BlockSize::Jitter`].
    pub seed: u64,
    /// Every k blocks (before blocks k, 2k, …) a new acquisition starts: `message_num` restarts at 1
    /// while `sample_num` continues (GUI 1.0.1, spec §6.2). No pause is inserted.
    pub restart_every_blocks: Option<u64>,
    /// Every k blocks (before blocks k, 2k, …) the File Reader loops: `sample_num` jumps back to
    /// [`SimConfig::start_sample`], `message_num` continues.
    pub loop_every_blocks: Option<u64>,
    /// From block k on, publish this channel set instead of [`SimConfig::channels`] (live mask edit).
    /// The set is sorted and de-duplicated.
    pub channel_change: Option<(u64, Vec<u32>)>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop_probability: 0.0,
            seed: 0x5EED_0E0E_2025_0707,
            restart_every_blocks: None,
            loop_every_blocks: None,
            channel_change: None,
        }
    }
}

/// Configuration of a [`Simulator`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Interface to bind: `"127.0.0.1"` (default) or `"*"` for all interfaces (what the plugin does).
    pub bind_host: String,
    /// Data (PUB) port; the heartbeat REP socket is bound on `data_port + 1`. `0` picks a random free
    /// pair in 20000..60000 (retrying on `EADDRINUSE`); see [`Simulator::data_port`].
    pub data_port: u16,
    /// Bind the REP socket and answer heartbeats as in spec §2.1.
    pub heartbeat: bool,
    /// Open Ephys local channel numbers to publish (sorted and de-duplicated by the simulator).
    pub channels: Vec<u32>,
    /// Stream name (`content.stream`).
    pub stream: String,
    /// Sample rate in Hz (> 0). Sent as the plugin does: through `float32` (29999.9 → 29999.900390625).
    pub sample_rate: f64,
    /// Block size policy.
    pub block: BlockSize,
    /// Payload values.
    pub signal: Signal,
    /// `sample_num` of the first block (and the File Reader loop target).
    pub start_sample: i64,
    /// Stop after this many blocks.
    pub max_blocks: Option<u64>,
    /// Stop after this much time since streaming started (i.e. after the subscriber arrived).
    pub duration: Option<Duration>,
    /// Pace block k at `t0 + (samples before block k) / sample_rate` on a monotonic clock; `false`
    /// sends as fast as possible.
    pub realtime: bool,
    /// `ZMQ_SNDHWM` of the data socket; 1000 is the libzmq default (the plugin sets no option).
    pub send_hwm: i32,
    /// Use an XPUB socket and start streaming only after a subscription message arrives (avoids the
    /// slow-joiner loss in tests). `false` = plain PUB that streams immediately, like the plugin.
    pub wait_for_subscriber: bool,
    /// Include `content.channel_name` = `"CH{n+1}"` (plugin ≥ 0.3.3).
    pub channel_names: bool,
    /// Include the top-level `"timestamp"` in ms since the Unix epoch (plugin ≥ 0.3.2).
    pub timestamps: bool,
    /// Send a TTL event (line 0, toggling on/off; word = state of line 0) before the data of every
    /// block whose index is a multiple of k (blocks 0, k, 2k, …). Its `sample_num` is the block's.
    pub ttl_every_blocks: Option<u64>,
    /// Fault injection.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind_host: "127.0.0.1".to_string(),
            data_port: 5556,
            heartbeat: true,
            channels: (0..8).collect(),
            stream: "example_data".to_string(),
            sample_rate: 30_000.0,
            block: BlockSize::Gui,
            signal: Signal::Pattern {
                wrap: pattern_wrap(7),
            },
            start_sample: 0,
            max_blocks: None,
            duration: None,
            realtime: true,
            send_hwm: 1000,
            wait_for_subscriber: true,
            channel_names: true,
            timestamps: true,
            ttl_every_blocks: None,
            faults: Faults::default(),
        }
    }
}

/// Statistics of a [`Simulator`] run.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    /// Blocks completed (all their messages handed to ZMQ).
    pub blocks: u64,
    /// DATA messages handed to ZMQ (excluding fault drops).
    pub data_messages: u64,
    /// EVENT (TTL) messages handed to ZMQ.
    pub event_messages: u64,
    /// Channel messages not sent because of [`Faults::drop_probability`] (their `message_num` was
    /// consumed, so receivers see gaps).
    pub dropped_by_fault: u64,
    /// Always `true` in snapshots produced by the simulator: messages a PUB/XPUB socket discards at
    /// its high-water mark (slow subscriber) are invisible to the sender, so "handed to ZMQ" above does
    /// not mean "delivered". Receivers must count drops from `message_num` gaps.
    pub hwm_dropped_unknown: bool,
    /// Heartbeat requests answered (any of the three replies).
    pub heartbeats_answered: u64,
    /// Blocks sent more than one block period behind their schedule (realtime mode only).
    pub late_blocks: u64,
    /// Largest observed lateness of a block against its schedule (realtime mode only).
    pub max_lateness: Duration,
    /// Acquisition restarts injected ([`Faults::restart_every_blocks`]).
    pub restarts: u64,
    /// File Reader loops injected ([`Faults::loop_every_blocks`]).
    pub loops: u64,
    /// Error that ended the simulator thread early (send failure, panicking observer), if any.
    pub error: Option<String>,
}

/// Called after the last message of each block was sent, with `(sample_num, num_samples,
/// channels in that block (including fault-dropped ones), Instant just after the last send)`.
pub type BlockObserver = Box<dyn FnMut(i64, usize, usize, Instant) + Send>;

// ---------------------------------------------------------------------------------------------
// JUCE JSON serialisation (spec §1.3)
// ---------------------------------------------------------------------------------------------

enum J<'a> {
    Int(i64),
    Dbl(f64),
    Str(&'a str),
    Arr(Vec<J<'a>>),
    Obj(Vec<(&'static str, J<'a>)>),
}

const NL: &str = "\r\n";

fn spaces(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// JUCE 8 `JSONFormatter::writeString` with UTF-8 encoding: `" \ \b \f \t \r \n` escaped, other
/// control characters as lowercase `\u00xx`, everything else (DEL, non-ASCII) raw; a NUL ends the
/// string (JUCE strings are NUL-terminated).
fn write_juce_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => break,
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 32 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_juce(out: &mut String, v: &J<'_>, indent: usize) {
    match v {
        J::Int(i) => out.push_str(&i.to_string()),
        J::Dbl(d) => out.push_str(&juce_double(*d)),
        J::Str(s) => write_juce_string(out, s),
        J::Arr(items) => {
            out.push('[');
            if !items.is_empty() {
                out.push_str(NL);
                for (i, item) in items.iter().enumerate() {
                    spaces(out, indent + 2);
                    write_juce(out, item, indent + 2);
                    if i + 1 < items.len() {
                        out.push(',');
                    }
                    out.push_str(NL);
                }
                spaces(out, indent);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            out.push_str(NL);
            for (i, (k, item)) in members.iter().enumerate() {
                spaces(out, indent + 2);
                write_juce_string(out, k);
                out.push_str(": ");
                write_juce(out, item, indent + 2);
                if i + 1 < members.len() {
                    out.push(',');
                }
                out.push_str(NL);
            }
            spaces(out, indent);
            out.push('}');
        }
    }
}

fn to_juce(v: &J<'_>) -> String {
    let mut s = String::with_capacity(320);
    write_juce(&mut s, v, 0);
    s
}

/// Removes trailing zeros after the decimal point, keeping at least one digit (`1.500` → `1.5`,
/// `2.000` → `2.0`), like JUCE `reduceLengthOfFloatString` on a fixed-point mantissa.
fn trim_decimals(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    let t = s.trim_end_matches('0');
    if t.ends_with('.') {
        format!("{t}0")
    } else {
        t.to_string()
    }
}

/// JUCE 8 `serialiseDouble` as used by `JSON::toString` (max 15 decimal places, spec §1.3):
/// non-finite → `null`; |x| ≥ 1e6 or ≤ 1e-5 → reduced scientific form (`1.0e6`, `1.5e-7`, `0.0`);
/// integral values → one decimal (`30000.0`, `-50.0`); otherwise 15 decimals with trailing zeros
/// removed (`0.5`, `-47.299999237060547`).
pub fn juce_double(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_string();
    }
    let a = x.abs();
    if a >= 1.0e6 || a <= 1.0e-5 {
        let s = format!("{x:.15e}");
        let (mant, exp) = match s.split_once('e') {
            Some(p) => p,
            None => (s.as_str(), "0"),
        };
        let mant = trim_decimals(mant);
        match exp.parse::<i32>() {
            Ok(0) | Err(_) => mant,
            Ok(e) => format!("{mant}e{e}"),
        }
    } else if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        trim_decimals(&format!("{x:.15}"))
    }
}

/// DATA header (spec §1.4, §1.8) in the exact JUCE layout: CRLF, 2-space indentation, key order
/// `message_num, type, content{stream, channel_num, channel_name?, num_samples, sample_num,
/// sample_rate}, data_size, timestamp?`, no trailing newline. `data_size` = `4 * num_samples`.
/// `sample_rate` is printed as given (the [`Publisher`] rounds it through `f32` first, like the plugin).
#[allow(clippy::too_many_arguments)]
pub fn juce_data_header(
    message_num: i64,
    stream: &str,
    channel_num: u32,
    channel_name: Option<&str>,
    num_samples: usize,
    sample_num: i64,
    sample_rate: f64,
    timestamp: Option<i64>,
) -> String {
    let mut content = vec![
        ("stream", J::Str(stream)),
        ("channel_num", J::Int(i64::from(channel_num))),
    ];
    if let Some(name) = channel_name {
        content.push(("channel_name", J::Str(name)));
    }
    content.push(("num_samples", J::Int(num_samples as i64)));
    content.push(("sample_num", J::Int(sample_num)));
    content.push(("sample_rate", J::Dbl(sample_rate)));
    let mut top = vec![
        ("message_num", J::Int(message_num)),
        ("type", J::Str("data")),
        ("content", J::Obj(content)),
        ("data_size", J::Int((num_samples as i64).saturating_mul(4))),
    ];
    if let Some(ts) = timestamp {
        top.push(("timestamp", J::Int(ts)));
    }
    to_juce(&J::Obj(top))
}

/// TTL EVENT header (spec §1.5): `message_num, type "event", content{stream, source_node, type 3,
/// sample_num}, data_size, timestamp?` in the exact JUCE layout.
pub fn juce_event_header(
    message_num: i64,
    stream: &str,
    source_node: i64,
    sample_num: i64,
    data_size: usize,
    timestamp: Option<i64>,
) -> String {
    let content = vec![
        ("stream", J::Str(stream)),
        ("source_node", J::Int(source_node)),
        ("type", J::Int(3)),
        ("sample_num", J::Int(sample_num)),
    ];
    let mut top = vec![
        ("message_num", J::Int(message_num)),
        ("type", J::Str("event")),
        ("content", J::Obj(content)),
        ("data_size", J::Int(data_size as i64)),
    ];
    if let Some(ts) = timestamp {
        top.push(("timestamp", J::Int(ts)));
    }
    to_juce(&J::Obj(top))
}

/// SPIKE header (spec §1.6): `message_num, type "spike", spike{stream, source_node, electrode,
/// sample_num, num_channels, num_samples, sorted_id, threshold[]}, timestamp?` — key `spike` (not
/// `content`) and no `data_size`, in the exact JUCE layout (multi-line array, `[]` when empty).
#[allow(clippy::too_many_arguments)]
pub fn juce_spike_header(
    message_num: i64,
    stream: &str,
    source_node: i64,
    electrode: &str,
    sample_num: i64,
    num_channels: usize,
    num_samples: usize,
    sorted_id: i64,
    thresholds: &[f64],
    timestamp: Option<i64>,
) -> String {
    let spike = vec![
        ("stream", J::Str(stream)),
        ("source_node", J::Int(source_node)),
        ("electrode", J::Str(electrode)),
        ("sample_num", J::Int(sample_num)),
        ("num_channels", J::Int(num_channels as i64)),
        ("num_samples", J::Int(num_samples as i64)),
        ("sorted_id", J::Int(sorted_id)),
        (
            "threshold",
            J::Arr(thresholds.iter().map(|t| J::Dbl(*t)).collect()),
        ),
    ];
    let mut top = vec![
        ("message_num", J::Int(message_num)),
        ("type", J::Str("spike")),
        ("spike", J::Obj(spike)),
    ];
    if let Some(ts) = timestamp {
        top.push(("timestamp", J::Int(ts)));
    }
    to_juce(&J::Obj(top))
}

/// Wall-clock time in milliseconds since the Unix epoch (`Time::currentTimeMillis()`); 0 if the
/// clock is before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Heartbeat (spec §2.1)
// ---------------------------------------------------------------------------------------------

/// Removes commas that are directly followed (after whitespace) by `}` or `]`, outside strings —
/// JUCE's legacy object/array parser accepts such trailing commas.
fn strip_trailing_commas(s: &str) -> String {
    let b: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    let mut esc = false;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        } else if c == ',' {
            let next = b[i + 1..].iter().find(|x| !x.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The reply the plugin sends to one heartbeat request frame (spec §2.1, §6.6). Models JUCE's
/// `JSON::parse(String, var&)`: the text ends at the first NUL (64 000-byte buffer); empty or
/// whitespace-only text is accepted; the top level must be an object or array; trailing text after
/// it and trailing commas are tolerated. `type == "event"` → [`REPLY_EVENT`]; other valid input →
/// [`REPLY_HEARTBEAT`]; otherwise [`REPLY_INVALID`].
pub fn heartbeat_reply(request: &[u8]) -> &'static [u8] {
    let req = &request[..request.len().min(HEARTBEAT_BUFFER - 1)];
    let req = match req.iter().position(|&b| b == 0) {
        Some(p) => &req[..p],
        None => req,
    };
    let text = String::from_utf8_lossy(req);
    let t = text.trim_start();
    if t.is_empty() {
        return REPLY_HEARTBEAT;
    }
    if !(t.starts_with('{') || t.starts_with('[')) {
        return REPLY_INVALID;
    }
    let cleaned = strip_trailing_commas(t);
    let mut it = serde_json::Deserializer::from_str(&cleaned).into_iter::<serde_json::Value>();
    match it.next() {
        Some(Ok(v)) => {
            if v.get("type").and_then(|x| x.as_str()) == Some("event") {
                REPLY_EVENT
            } else {
                REPLY_HEARTBEAT
            }
        }
        _ => REPLY_INVALID,
    }
}

/// Answers heartbeats on `sock` until `stop` is set or the context terminates.
fn heartbeat_loop(sock: zmq::Socket, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        match sock.poll(zmq::POLLIN, POLL_SLICE_MS) {
            Ok(n) if n > 0 => {}
            Ok(_) => continue,
            Err(zmq::Error::EINTR) => continue,
            Err(_) => break,
        }
        let frames = match sock.recv_multipart(zmq::DONTWAIT) {
            Ok(f) => f,
            Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => continue,
            Err(_) => break,
        };
        let first: &[u8] = frames.first().map(|f| f.as_slice()).unwrap_or(&[]);
        let reply = heartbeat_reply(first);
        // Counted before the reply goes out: a client that has its reply must find it counted.
        answered.fetch_add(1, Ordering::Relaxed);
        if sock.send(reply, 0).is_err() {
            break;
        }
    }
    let _ = sock.set_linger(0);
}

struct HeartbeatServer {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl HeartbeatServer {
    fn spawn(sock: zmq::Socket) -> Result<HeartbeatServer, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s2, a2) = (stop.clone(), answered.clone());
        let thread = std::thread::Builder::new()
            .name("oe_sim_hb".to_string())
            .spawn(move || heartbeat_loop(sock, s2, a2))
            .map_err(|e| format!("cannot spawn heartbeat thread: {e}"))?;
        Ok(HeartbeatServer {
            stop,
            answered,
            thread: Some(thread),
        })
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HeartbeatServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------------------------

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn endpoint(host: &str, port: u16) -> String {
    format!("tcp://{host}:{port}")
}

/// Address a local client should connect to for a socket bound on `host`.
fn connect_host(host: &str) -> &str {
    match host {
        "*" | "0.0.0.0" | "" => "127.0.0.1",
        h => h,
    }
}

fn make_data_socket(ctx: &zmq::Context, xpub: bool, hwm: i32) -> Result<zmq::Socket, String> {
    let kind = if xpub { zmq::XPUB } else { zmq::PUB };
    let s = ctx
        .socket(kind)
        .map_err(|e| format!("cannot create data socket: {e}"))?;
    s.set_linger(0).map_err(|e| format!("set_linger: {e}"))?;
    s.set_sndhwm(hwm).map_err(|e| format!("set_sndhwm: {e}"))?;
    Ok(s)
}

fn bound_port(s: &zmq::Socket) -> Result<u16, String> {
    let ep = s
        .get_last_endpoint()
        .map_err(|e| format!("get_last_endpoint: {e}"))?
        .map_err(|_| "endpoint is not UTF-8".to_string())?;
    ep.rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| format!("cannot parse port from {ep}"))
}

/// Binds the data socket (and the REP socket on port + 1 if `heartbeat`). Port 0 picks a random pair
/// in 20000..60000, retrying on EADDRINUSE.
fn bind_pair(
    ctx: &zmq::Context,
    host: &str,
    port: u16,
    heartbeat: bool,
    xpub: bool,
    hwm: i32,
) -> Result<(zmq::Socket, Option<zmq::Socket>, u16), String> {
    let attempts = if port == 0 { 64 } else { 1 };
    let mut last_err = String::new();
    for _ in 0..attempts {
        let p = if port == 0 {
            20_000 + (random_u64() % 40_000) as u16
        } else {
            port
        };
        if heartbeat && p == u16::MAX {
            return Err("data port 65535 leaves no heartbeat port".to_string());
        }
        let data = make_data_socket(ctx, xpub, hwm)?;
        match data.bind(&endpoint(host, p)) {
            Ok(()) => {}
            Err(e @ zmq::Error::EADDRINUSE) => {
                last_err = format!("bind {}: {e}", endpoint(host, p));
                continue;
            }
            Err(e) => return Err(format!("bind {}: {e}", endpoint(host, p))),
        }
        if !heartbeat {
            return Ok((data, None, p));
        }
        let rep = ctx
            .socket(zmq::REP)
            .map_err(|e| format!("cannot create heartbeat socket: {e}"))?;
        rep.set_linger(0).map_err(|e| format!("set_linger: {e}"))?;
        match rep.bind(&endpoint(host, p + 1)) {
            Ok(()) => return Ok((data, Some(rep), p)),
            Err(e @ zmq::Error::EADDRINUSE) => {
                last_err = format!("bind {}: {e}", endpoint(host, p + 1));
                continue; // both sockets dropped (linger 0), try another pair
            }
            Err(e) => return Err(format!("bind {}: {e}", endpoint(host, p + 1))),
        }
    }
    Err(last_err)
}

/// Polls an XPUB socket until a subscribe message (first byte 1) arrives, `stop` is set, or the
/// deadline passes. Returns Ok(true) when subscribed.
fn wait_subscription(
    sock: &zmq::Socket,
    stop: Option<&AtomicBool>,
    deadline: Option<Instant>,
) -> Result<bool, String> {
    loop {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(false);
        }
        let slice = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(false);
                }
                ((d - now).as_millis() as i64).clamp(1, POLL_SLICE_MS)
            }
            None => POLL_SLICE_MS,
        };
        match sock.poll(zmq::POLLIN, slice) {
            Ok(n) if n > 0 => {}
            Ok(_) | Err(zmq::Error::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        match sock.recv_bytes(zmq::DONTWAIT) {
            Ok(m) if m.first() == Some(&1) => return Ok(true),
            Ok(_) | Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher
// ---------------------------------------------------------------------------------------------

/// Low-level publisher for tests that need exact control (sparse channels, partial blocks, bad
/// messages). Each `send_*` call emits one message with the plugin's framing and pre-increments the
/// shared 32-bit `message_num` (first message = 1 after [`Publisher::bind`]).
pub struct Publisher {
    sock: zmq::Socket,
    xpub: bool,
    host: String,
    port: u16,
    /// Value the next message will carry.
    next_msg: i32,
    length_bug: bool,
    hb: Option<HeartbeatServer>,
    hb_port: Option<u16>,
}

impl Publisher {
    /// Binds an XPUB data socket on `tcp://{host}:{port}` (linger 0, SNDHWM 1000). Port 0 binds an
    /// ephemeral port (see [`Publisher::port`]). No heartbeat socket; see
    /// [`Publisher::serve_heartbeats`] / [`Publisher::bind_with_heartbeat`].
    pub fn bind(ctx: &zmq::Context, host: &str, port: u16) -> Result<Publisher, String> {
        Self::bind_with_hwm(ctx, host, port, 1000)
    }

    /// Like [`Publisher::bind`] with ZMQ_SNDHWM `hwm` (set before binding: libzmq copies a
    /// listener's options at bind time). Tests that flood raise it so loss stays upstream of
    /// nothing.
    pub fn bind_with_hwm(
        ctx: &zmq::Context,
        host: &str,
        port: u16,
        hwm: i32,
    ) -> Result<Publisher, String> {
        let sock = make_data_socket(ctx, true, hwm)?;
        let ep = if port == 0 {
            format!("tcp://{host}:*")
        } else {
            endpoint(host, port)
        };
        sock.bind(&ep).map_err(|e| format!("bind {ep}: {e}"))?;
        let port = bound_port(&sock)?;
        Ok(Publisher::from_socket(sock, true, host, port))
    }

    /// Binds the XPUB data socket on `port` and a REP heartbeat socket on `port + 1`, served by a
    /// background thread until the publisher is dropped. Port 0 picks a random free pair in
    /// 20000..60000 (retrying on EADDRINUSE).
    pub fn bind_with_heartbeat(
        ctx: &zmq::Context,
        host: &str,
        port: u16,
    ) -> Result<Publisher, String> {
        let (sock, rep, p) = bind_pair(ctx, host, port, true, true, 1000)?;
        let mut publ = Publisher::from_socket(sock, true, host, p);
        if let Some(rep) = rep {
            publ.hb = Some(HeartbeatServer::spawn(rep)?);
            publ.hb_port = Some(p + 1);
        }
        Ok(publ)
    }

    /// Like [`Publisher::bind_with_heartbeat`] with ZMQ_SNDHWM `hwm` (0 = unlimited: a replay
    /// that must lose nothing).
    pub fn bind_pair_with_hwm(
        ctx: &zmq::Context,
        host: &str,
        port: u16,
        hwm: i32,
    ) -> Result<Publisher, String> {
        let (sock, rep, p) = bind_pair(ctx, host, port, true, true, hwm)?;
        let mut publ = Publisher::from_socket(sock, true, host, p);
        if let Some(rep) = rep {
            publ.hb = Some(HeartbeatServer::spawn(rep)?);
            publ.hb_port = Some(p + 1);
        }
        Ok(publ)
    }

    fn from_socket(sock: zmq::Socket, xpub: bool, host: &str, port: u16) -> Publisher {
        Publisher {
            sock,
            xpub,
            host: host.to_string(),
            port,
            next_msg: 1,
            length_bug: true,
            hb: None,
            hb_port: None,
        }
    }

    /// Binds a REP socket on data port + 1 and answers heartbeats (spec §2.1) on a background thread
    /// until the publisher is dropped. Returns the heartbeat port. Idempotent.
    pub fn serve_heartbeats(&mut self, ctx: &zmq::Context) -> Result<u16, String> {
        if let Some(p) = self.hb_port {
            return Ok(p);
        }
        let hp = self
            .port
            .checked_add(1)
            .ok_or_else(|| "data port 65535 leaves no heartbeat port".to_string())?;
        let rep = ctx
            .socket(zmq::REP)
            .map_err(|e| format!("cannot create heartbeat socket: {e}"))?;
        rep.set_linger(0).map_err(|e| format!("set_linger: {e}"))?;
        let ep = endpoint(&self.host, hp);
        rep.bind(&ep).map_err(|e| format!("bind {ep}: {e}"))?;
        self.hb = Some(HeartbeatServer::spawn(rep)?);
        self.hb_port = Some(hp);
        Ok(hp)
    }

    /// Heartbeat requests answered so far by [`Publisher::serve_heartbeats`].
    pub fn heartbeats_answered(&self) -> u64 {
        self.hb
            .as_ref()
            .map(|h| h.answered.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// The bound data port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The heartbeat port, if heartbeats are served.
    pub fn heartbeat_port(&self) -> Option<u16> {
        self.hb_port
    }

    /// Endpoint a local SUB should connect to (`tcp://127.0.0.1:port` when bound on `*`).
    pub fn connect_endpoint(&self) -> String {
        endpoint(connect_host(&self.host), self.port)
    }

    /// Whether frame 1 is cut to the header's character count (JUCE `String::length()`), as the
    /// plugin does (spec §1.3 header-length bug). Default `true`; only matters for non-ASCII text.
    pub fn set_juce_length_bug(&mut self, enabled: bool) {
        self.length_bug = enabled;
    }

    /// Blocks until the XPUB sees a subscribe message, or fails after `timeout`.
    pub fn wait_for_subscriber(&self, timeout: Duration) -> Result<(), String> {
        if !self.xpub {
            return Err("not an XPUB socket".to_string());
        }
        match wait_subscription(&self.sock, None, Some(Instant::now() + timeout))? {
            true => Ok(()),
            false => Err(format!("no subscriber within {timeout:?}")),
        }
    }

    /// Consumes one `message_num` without sending anything (the plugin's counter is incremented for
    /// every message, e.g. also for a spike with data size 0) and returns it. Receivers see a gap.
    pub fn next_message_num(&mut self) -> i64 {
        let n = self.next_msg;
        self.next_msg = n.wrapping_add(1);
        i64::from(n)
    }

    /// The `message_num` the next message will carry (not consumed).
    pub fn peek_message_num(&self) -> i64 {
        i64::from(self.next_msg)
    }

    /// Sets the `message_num` of the next message (`set_message_num(1)` = new acquisition). The
    /// counter is a signed 32-bit int like the plugin's: the value is truncated to `i32` and wraps
    /// after `i32::MAX`.
    pub fn set_message_num(&mut self, next: i64) {
        self.next_msg = next as i32;
    }

    fn header_frame<'a>(&self, header: &'a str) -> &'a [u8] {
        if self.length_bug {
            let n = header.chars().count();
            &header.as_bytes()[..n]
        } else {
            header.as_bytes()
        }
    }

    fn send_frames(&self, frames: &[&[u8]]) -> Result<(), String> {
        self.sock
            .send_multipart(frames.iter().copied(), 0)
            .map_err(|e| format!("send: {e}"))
    }

    /// Sends one DATA message (3 frames). `sample_rate` goes through `f32` as in the plugin; the
    /// payload is `samples` as little-endian `f32`; `data_size = 4 * samples.len()`.
    #[allow(clippy::too_many_arguments)]
    pub fn send_data(
        &mut self,
        stream: &str,
        channel_num: u32,
        channel_name: Option<&str>,
        sample_num: i64,
        sample_rate: f64,
        samples: &[f32],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let mut payload = Vec::with_capacity(samples.len() * 4);
        for s in samples {
            payload.extend_from_slice(&s.to_le_bytes());
        }
        self.send_data_bytes(
            stream,
            channel_num,
            channel_name,
            sample_num,
            sample_rate,
            samples.len(),
            &payload,
            timestamp,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn send_data_bytes(
        &mut self,
        stream: &str,
        channel_num: u32,
        channel_name: Option<&str>,
        sample_num: i64,
        sample_rate: f64,
        num_samples: usize,
        payload: &[u8],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let n = self.next_message_num();
        let header = juce_data_header(
            n,
            stream,
            channel_num,
            channel_name,
            num_samples,
            sample_num,
            f64::from(sample_rate as f32),
            timestamp,
        );
        let h = self.header_frame(&header);
        self.send_frames(&[DATA_ENVELOPE, h, payload])
    }

    /// Sends one TTL EVENT message (3 frames; payload `[line, state, word as u64 LE]`, 10 bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn send_ttl(
        &mut self,
        stream: &str,
        source_node: i64,
        sample_num: i64,
        line: u8,
        state: u8,
        word: u64,
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let mut payload = [0u8; 10];
        payload[0] = line;
        payload[1] = state;
        payload[2..].copy_from_slice(&word.to_le_bytes());
        self.send_event_bytes(stream, source_node, sample_num, &payload, timestamp)
    }

    /// Sends an EVENT message with an arbitrary payload; `data_size = payload.len()`, and an empty
    /// payload produces the plugin's 2-frame event.
    pub fn send_event_bytes(
        &mut self,
        stream: &str,
        source_node: i64,
        sample_num: i64,
        payload: &[u8],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let n = self.next_message_num();
        let header =
            juce_event_header(n, stream, source_node, sample_num, payload.len(), timestamp);
        let h = self.header_frame(&header);
        if payload.is_empty() {
            self.send_frames(&[EVENT_ENVELOPE, h])
        } else {
            self.send_frames(&[EVENT_ENVELOPE, h, payload])
        }
    }

    /// Sends one SPIKE message (`EVENT\0` envelope) with `source_node` [`SPIKE_SOURCE_NODE`] and
    /// thresholds of -50.0 per channel. `waveform` is channel-major and must hold
    /// `num_channels * num_samples` values.
    #[allow(clippy::too_many_arguments)]
    pub fn send_spike(
        &mut self,
        stream: &str,
        electrode: &str,
        sample_num: i64,
        num_channels: usize,
        num_samples: usize,
        sorted_id: i64,
        waveform: &[f32],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let thresholds = vec![-50.0; num_channels];
        self.send_spike_full(
            stream,
            SPIKE_SOURCE_NODE,
            electrode,
            sample_num,
            num_channels,
            num_samples,
            sorted_id,
            &thresholds,
            waveform,
            timestamp,
        )
    }

    /// Like [`Publisher::send_spike`] with explicit `source_node` and thresholds (printed as given;
    /// the plugin's thresholds are `f32` widened to `f64`).
    #[allow(clippy::too_many_arguments)]
    pub fn send_spike_full(
        &mut self,
        stream: &str,
        source_node: i64,
        electrode: &str,
        sample_num: i64,
        num_channels: usize,
        num_samples: usize,
        sorted_id: i64,
        thresholds: &[f64],
        waveform: &[f32],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        if num_channels.checked_mul(num_samples) != Some(waveform.len()) {
            return Err(format!(
                "waveform has {} values, expected {num_channels} x {num_samples}",
                waveform.len()
            ));
        }
        let n = self.next_message_num();
        let header = juce_spike_header(
            n,
            stream,
            source_node,
            electrode,
            sample_num,
            num_channels,
            num_samples,
            sorted_id,
            thresholds,
            timestamp,
        );
        let mut payload = Vec::with_capacity(waveform.len() * 4);
        for s in waveform {
            payload.extend_from_slice(&s.to_le_bytes());
        }
        let h = self.header_frame(&header);
        self.send_frames(&[EVENT_ENVELOPE, h, &payload])
    }

    /// Sends arbitrary frames as one multipart message (bad-input tests). Does not touch
    /// `message_num`. An empty slice is rejected.
    pub fn send_raw(&mut self, frames: &[&[u8]]) -> Result<(), String> {
        if frames.is_empty() {
            return Err("no frames".to_string());
        }
        self.send_frames(frames)
    }

    /// Drains pending subscription messages of an XPUB socket (non-blocking).
    fn drain_subscriptions(&self) {
        if self.xpub {
            while self.sock.recv_bytes(zmq::DONTWAIT).is_ok() {}
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(mut hb) = self.hb.take() {
            hb.shutdown();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Simulator
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    blocks: AtomicU64,
    data_messages: AtomicU64,
    event_messages: AtomicU64,
    dropped_by_fault: AtomicU64,
    late_blocks: AtomicU64,
    max_lateness_ns: AtomicU64,
    restarts: AtomicU64,
    loops: AtomicU64,
    finished: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Shared {
    fn set_error(&self, e: String) {
        let mut g = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }
}

/// SplitMix64: small, deterministic, good enough for fault injection.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A self-timed Open Ephys ZMQ Interface publisher running on its own thread (`oe_sim`), plus a
/// heartbeat thread (`oe_sim_hb`). Dropping it stops it like [`Simulator::stop`].
pub struct Simulator {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    hb: Option<HeartbeatServer>,
    data_port: u16,
    heartbeat_port: Option<u16>,
    host: String,
}

struct Runner {
    cfg: SimConfig,
    channels: Vec<u32>,
    changed: Option<(u64, Vec<u32>)>,
    publ: Publisher,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    observer: Option<BlockObserver>,
}

/// Sleeps until `due` (bulk sleep in slices, then a short spin). Returns false if stopped.
fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        let left = due - now;
        if left > SPIN_WINDOW {
            let chunk = (left - SPIN_WINDOW).min(Duration::from_millis(POLL_SLICE_MS as u64));
            std::thread::sleep(chunk);
        } else {
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            return true;
        }
    }
}

impl Runner {
    fn run(mut self) {
        let natural_end = match self.stream() {
            Ok(natural) => natural,
            Err(e) => {
                self.shared.set_error(e);
                false
            }
        };
        let linger = if natural_end {
            NATURAL_END_LINGER_MS
        } else {
            0
        };
        let _ = self.publ.sock.set_linger(linger);
        self.shared.finished.store(true, Ordering::Release);
        // `self.publ` (and its socket) is dropped here.
    }

    /// Returns Ok(true) when the run ended by max_blocks/duration, Ok(false) when stopped.
    fn stream(&mut self) -> Result<bool, String> {
        if self.cfg.wait_for_subscriber
            && !wait_subscription(&self.publ.sock, Some(&self.stop), None)?
        {
            return Ok(false);
        }
        let cfg = &self.cfg;
        let rate = cfg.sample_rate;
        let faults = &cfg.faults;
        let p_drop = if faults.drop_probability.is_nan() {
            0.0
        } else {
            faults.drop_probability.clamp(0.0, 1.0)
        };
        let mut drop_rng = Rng(faults.seed);
        let mut size_rng = Rng(faults.seed ^ 0xB10C_B10C_B10C_B10C);
        let gui_n = BlockSize::gui_block(rate);
        let ts = |on: bool| if on { Some(now_ms()) } else { None };

        let t0 = Instant::now();
        let mut sched_secs = 0.0f64;
        let mut sample_num = cfg.start_sample;
        let mut ttl_state: u8 = 0;
        let mut samples: Vec<f32> = Vec::new();
        let mut payload: Vec<u8> = Vec::new();
        let mut k: u64 = 0;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            if cfg.max_blocks.is_some_and(|m| k >= m) {
                return Ok(true);
            }
            if cfg.duration.is_some_and(|d| {
                t0.elapsed() >= d || (cfg.realtime && sched_secs >= d.as_secs_f64())
            }) {
                return Ok(true);
            }
            if k > 0 {
                if faults
                    .restart_every_blocks
                    .is_some_and(|r| r > 0 && k.is_multiple_of(r))
                {
                    self.publ.set_message_num(1);
                    self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                }
                if faults
                    .loop_every_blocks
                    .is_some_and(|l| l > 0 && k.is_multiple_of(l))
                {
                    sample_num = cfg.start_sample;
                    self.shared.loops.fetch_add(1, Ordering::Relaxed);
                }
            }
            let channels: &[u32] = match &self.changed {
                Some((from, set)) if k >= *from => set,
                _ => &self.channels,
            };
            let n = match cfg.block {
                BlockSize::Gui => gui_n,
                BlockSize::Fixed(n) => n,
                BlockSize::Alternating(a, b) => {
                    if k.is_multiple_of(2) {
                        a
                    } else {
                        b
                    }
                }
                BlockSize::Jitter { min, max } => {
                    let span = ((max - min) as u64).saturating_add(1);
                    min.saturating_add((size_rng.next_u64() % span) as usize)
                }
            };
            let period = n as f64 / rate;

            if cfg.realtime {
                let due = Duration::try_from_secs_f64(sched_secs)
                    .ok()
                    .and_then(|d| t0.checked_add(d))
                    .ok_or_else(|| format!("schedule overflow at block {k}"))?;
                if !sleep_until(due, &self.stop) {
                    return Ok(false);
                }
                let late = Instant::now().saturating_duration_since(due);
                if late.as_secs_f64() > period {
                    self.shared.late_blocks.fetch_add(1, Ordering::Relaxed);
                }
                let ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
                self.shared.max_lateness_ns.fetch_max(ns, Ordering::Relaxed);
            }
            self.publ.drain_subscriptions();

            if cfg
                .ttl_every_blocks
                .is_some_and(|t| t > 0 && k.is_multiple_of(t))
            {
                ttl_state ^= 1;
                self.publ.send_ttl(
                    &cfg.stream,
                    TTL_SOURCE_NODE,
                    sample_num,
                    0,
                    ttl_state,
                    u64::from(ttl_state),
                    ts(cfg.timestamps),
                )?;
                self.shared.event_messages.fetch_add(1, Ordering::Relaxed);
            }

            for &ch in channels {
                if p_drop > 0.0 && drop_rng.unit() < p_drop {
                    self.publ.next_message_num();
                    self.shared.dropped_by_fault.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                samples.clear();
                samples.extend(
                    (0..n as i64).map(|i| {
                        signal_value_fs(&cfg.signal, ch, sample_num.wrapping_add(i), rate)
                    }),
                );
                payload.clear();
                for s in &samples {
                    payload.extend_from_slice(&s.to_le_bytes());
                }
                let name_buf;
                let name: Option<&str> = if cfg.channel_names {
                    name_buf = format!("CH{}", u64::from(ch) + 1);
                    Some(&name_buf)
                } else {
                    None
                };
                self.publ.send_data_bytes(
                    &cfg.stream,
                    ch,
                    name,
                    sample_num,
                    rate,
                    n,
                    &payload,
                    ts(cfg.timestamps),
                )?;
                self.shared.data_messages.fetch_add(1, Ordering::Relaxed);
            }
            let sent_at = Instant::now();
            self.shared.blocks.fetch_add(1, Ordering::Relaxed);
            if let Some(obs) = self.observer.as_mut() {
                obs(sample_num, n, channels.len(), sent_at);
            }
            sample_num = sample_num.wrapping_add(n as i64);
            sched_secs += period;
            k += 1;
        }
    }
}

fn sorted_set(v: &[u32]) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

impl Simulator {
    /// Validates `cfg`, binds the data socket (and the heartbeat socket on data port + 1) *before*
    /// returning — a caller may connect right away — then streams on a thread named `oe_sim`.
    /// Heartbeats are served by a thread `oe_sim_hb` from the moment this returns.
    pub fn start(
        cfg: SimConfig,
        ctx: &zmq::Context,
        observer: Option<BlockObserver>,
    ) -> Result<Simulator, String> {
        if !(cfg.sample_rate.is_finite() && cfg.sample_rate > 0.0) {
            return Err(format!("invalid sample_rate {}", cfg.sample_rate));
        }
        match cfg.block {
            BlockSize::Fixed(0) => return Err("block size 0".to_string()),
            BlockSize::Alternating(a, b) if a == 0 || b == 0 => {
                return Err("block size 0".to_string())
            }
            BlockSize::Jitter { min, max } if min == 0 || max < min => {
                return Err(format!("invalid jitter range {min}..={max}"))
            }
            _ => {}
        }
        let channels = sorted_set(&cfg.channels);
        let changed = cfg
            .faults
            .channel_change
            .as_ref()
            .map(|(k, set)| (*k, sorted_set(set)));
        let (sock, rep, port) = bind_pair(
            ctx,
            &cfg.bind_host,
            cfg.data_port,
            cfg.heartbeat,
            cfg.wait_for_subscriber,
            cfg.send_hwm,
        )?;
        let hb = match rep {
            Some(rep) => Some(HeartbeatServer::spawn(rep)?),
            None => None,
        };
        let heartbeat_port = hb.as_ref().map(|_| port + 1);
        let publ = Publisher::from_socket(sock, cfg.wait_for_subscriber, &cfg.bind_host, port);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let host = cfg.bind_host.clone();
        let runner = Runner {
            cfg,
            channels,
            changed,
            publ,
            stop: stop.clone(),
            shared: shared.clone(),
            observer,
        };
        let thread = std::thread::Builder::new()
            .name("oe_sim".to_string())
            .spawn(move || runner.run())
            .map_err(|e| format!("cannot spawn simulator thread: {e}"))?;
        Ok(Simulator {
            stop,
            shared,
            thread: Some(thread),
            hb,
            data_port: port,
            heartbeat_port,
            host,
        })
    }

    /// The bound data port (useful with `data_port: 0`).
    pub fn data_port(&self) -> u16 {
        self.data_port
    }

    /// The heartbeat port (data port + 1), if heartbeats are enabled.
    pub fn heartbeat_port(&self) -> Option<u16> {
        self.heartbeat_port
    }

    /// Endpoint a local SUB should connect to (`tcp://127.0.0.1:port` when bound on `*`).
    pub fn data_endpoint(&self) -> String {
        endpoint(connect_host(&self.host), self.data_port)
    }

    /// Endpoint a local REQ should connect to for heartbeats, if enabled.
    pub fn heartbeat_endpoint(&self) -> Option<String> {
        self.heartbeat_port
            .map(|p| endpoint(connect_host(&self.host), p))
    }

    /// Live snapshot of the statistics.
    pub fn stats(&self) -> SimStats {
        let s = &self.shared;
        SimStats {
            blocks: s.blocks.load(Ordering::Relaxed),
            data_messages: s.data_messages.load(Ordering::Relaxed),
            event_messages: s.event_messages.load(Ordering::Relaxed),
            dropped_by_fault: s.dropped_by_fault.load(Ordering::Relaxed),
            hwm_dropped_unknown: true,
            heartbeats_answered: self
                .hb
                .as_ref()
                .map(|h| h.answered.load(Ordering::Relaxed))
                .unwrap_or(0),
            late_blocks: s.late_blocks.load(Ordering::Relaxed),
            max_lateness: Duration::from_nanos(s.max_lateness_ns.load(Ordering::Relaxed)),
            restarts: s.restarts.load(Ordering::Relaxed),
            loops: s.loops.load(Ordering::Relaxed),
            error: s.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Whether the streaming thread has ended (max_blocks/duration reached, stopped, or error).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    fn join_stream(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                self.shared
                    .set_error("simulator thread panicked (observer?)".to_string());
                self.shared.finished.store(true, Ordering::Release);
            }
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join_stream();
        if let Some(hb) = self.hb.as_mut() {
            hb.shutdown();
        }
    }

    /// Stops streaming (within ~20 ms, even while waiting for a subscriber), joins the threads,
    /// closes the sockets with linger 0 and returns the final statistics.
    pub fn stop(mut self) -> SimStats {
        self.shutdown();
        self.stats()
    }

    /// Waits until the run ends by itself (`max_blocks` or `duration`; counted from the first
    /// subscriber when `wait_for_subscriber`), then stops the heartbeat thread and returns the final
    /// statistics. The data socket is closed with a 1 s linger so queued messages still reach
    /// connected subscribers. Without `max_blocks` and `duration` this blocks until an error.
    pub fn wait(mut self) -> SimStats {
        self.join_stream();
        self.shutdown();
        self.stats()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const EXAMPLE_18: &str = "{\r\n  \"message_num\": 1,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": \"example_data\",\r\n    \"channel_num\": 0,\r\n    \"channel_name\": \"CH1\",\r\n    \"num_samples\": 4,\r\n    \"sample_num\": 30720,\r\n    \"sample_rate\": 30000.0\r\n  },\r\n  \"data_size\": 16,\r\n  \"timestamp\": 1753228800000\r\n}";

    const EXAMPLE_15: &str = "{\r\n  \"message_num\": 7,\r\n  \"type\": \"event\",\r\n  \"content\": {\r\n    \"stream\": \"example_data\",\r\n    \"source_node\": 100,\r\n    \"type\": 3,\r\n    \"sample_num\": 31000\r\n  },\r\n  \"data_size\": 10,\r\n  \"timestamp\": 1753228800012\r\n}";

    const RECV_TIMEOUT_MS: i32 = 5000;

    #[test]
    fn data_header_matches_spec_1_8() {
        assert_eq!(EXAMPLE_18.len(), 275);
        let h = juce_data_header(
            1,
            "example_data",
            0,
            Some("CH1"),
            4,
            30720,
            30000.0,
            Some(1_753_228_800_000),
        );
        assert_eq!(h, EXAMPLE_18);
        // Start of the hex dump of §1.8.
        assert_eq!(
            &h.as_bytes()[..8],
            &[0x7b, 0x0d, 0x0a, 0x20, 0x20, 0x22, 0x6d, 0x65]
        );
        assert_eq!(&h.as_bytes()[h.len() - 3..], &[0x0d, 0x0a, 0x7d]);
        // Optional keys absent.
        let h2 = juce_data_header(2, "s", 3, None, 1, 0, 30000.0, None);
        assert_eq!(
            h2,
            "{\r\n  \"message_num\": 2,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": \"s\",\r\n    \"channel_num\": 3,\r\n    \"num_samples\": 1,\r\n    \"sample_num\": 0,\r\n    \"sample_rate\": 30000.0\r\n  },\r\n  \"data_size\": 4\r\n}"
        );
    }

    #[test]
    fn event_header_matches_spec_1_5() {
        let h = juce_event_header(7, "example_data", 100, 31000, 10, Some(1_753_228_800_012));
        assert_eq!(h, EXAMPLE_15);
    }

    #[test]
    fn spike_header_layout() {
        let h = juce_spike_header(
            9,
            "example_data",
            104,
            "Stereotrode 1",
            31005,
            2,
            40,
            0,
            &[-50.0, -50.0],
            Some(1_753_228_800_013),
        );
        let expected = "{\r\n  \"message_num\": 9,\r\n  \"type\": \"spike\",\r\n  \"spike\": {\r\n    \"stream\": \"example_data\",\r\n    \"source_node\": 104,\r\n    \"electrode\": \"Stereotrode 1\",\r\n    \"sample_num\": 31005,\r\n    \"num_channels\": 2,\r\n    \"num_samples\": 40,\r\n    \"sorted_id\": 0,\r\n    \"threshold\": [\r\n      -50.0,\r\n      -50.0\r\n    ]\r\n  },\r\n  \"timestamp\": 1753228800013\r\n}";
        assert_eq!(h, expected);
        let empty = juce_spike_header(1, "s", 1, "e", 0, 0, 0, 0, &[], None);
        assert!(empty.contains("\"threshold\": []\r\n  }\r\n}"));
    }

    #[test]
    fn string_escaping() {
        let h = juce_event_header(1, "a\"b\\c\td\u{7}e\u{7f}f\u{e4}", 1, 0, 0, None);
        assert!(h.contains("\"stream\": \"a\\\"b\\\\c\\td\\u0007e\u{7f}f\u{e4}\""));
    }

    #[test]
    fn juce_double_cases() {
        assert_eq!(juce_double(30000.0), "30000.0");
        assert_eq!(juce_double(-50.0), "-50.0");
        assert_eq!(juce_double(1.0e6), "1.0e6");
        assert_eq!(juce_double(0.5), "0.5");
        assert_eq!(juce_double(f64::from(-47.3f32)), "-47.299999237060547");
        assert_eq!(juce_double(f64::from(29999.9f32)), "29999.900390625");
        assert_eq!(juce_double(f64::NAN), "null");
        assert_eq!(juce_double(f64::INFINITY), "null");
        assert_eq!(juce_double(0.0), "0.0");
        assert_eq!(juce_double(1.5e-7), "1.5e-7");
        assert_eq!(juce_double(12_345_678_901.0), "1.2345678901e10");
        assert_eq!(juce_double(-2.5e6), "-2.5e6");
        assert_eq!(juce_double(0.025), "0.025");
        assert_eq!(juce_double(364.0), "364.0");
    }

    #[test]
    fn pattern_and_signal_exact() {
        assert_eq!(pattern_wrap(255), 65536);
        assert_eq!(pattern_wrap(1023), 16384);
        assert_eq!(pattern_wrap(7), 1 << 21);
        assert_eq!(pattern_wrap(0), 1 << 24);
        assert_eq!(pattern_wrap(u32::MAX), 1);
        for &max in &[7u32, 255, 1023, 383] {
            let w = pattern_wrap(max);
            let sig = Signal::Pattern { wrap: w };
            assert!(u64::from(max) * u64::from(w) + u64::from(w) <= 1 << 24);
            for &ch in &[0, max / 2, max] {
                for &j in &[0i64, 1, i64::from(w) - 1, i64::from(w), 123_456_789, -1] {
                    let v = signal_value(&sig, ch, j);
                    let expect = i64::from(ch) * i64::from(w) + j.rem_euclid(i64::from(w));
                    assert_eq!(v as i64, expect);
                    assert_eq!(f64::from(v), expect as f64, "exact");
                }
            }
        }
        assert_eq!(signal_value(&Signal::Ramp, 1, 3), 1003.0);
        assert_eq!(signal_value(&Signal::Ramp, 0, 0), 0.0);
        assert_eq!(signal_value(&Signal::Sine, 0, 0), 0.0);
        // 10 Hz at 30 kHz: quarter period = 750 samples → peak 100.
        assert!((signal_value(&Signal::Sine, 0, 750) - 100.0).abs() < 1e-3);
        assert_eq!(BlockSize::gui_block(30000.0), 696);
        assert_eq!(BlockSize::gui_block(40000.0), 928);
    }

    #[test]
    fn heartbeat_reply_rules() {
        assert_eq!(
            heartbeat_reply(br#"{"application":"x","uuid":"u","type":"heartbeat"}"#),
            REPLY_HEARTBEAT
        );
        assert_eq!(heartbeat_reply(br#"{"application":"x"}"#), REPLY_HEARTBEAT);
        assert_eq!(
            heartbeat_reply(br#"{"type":"event","event":{}}"#),
            REPLY_EVENT
        );
        assert_eq!(heartbeat_reply(b"not json"), REPLY_INVALID);
        assert_eq!(heartbeat_reply(b"{\"a\":"), REPLY_INVALID);
        // Leniency observed on GUI 1.0.1 (§6.6).
        assert_eq!(heartbeat_reply(b""), REPLY_HEARTBEAT);
        assert_eq!(
            heartbeat_reply(br#"{"type":"heartbeat"} trailing"#),
            REPLY_HEARTBEAT
        );
        assert_eq!(
            heartbeat_reply(br#"{"type":"heartbeat",}"#),
            REPLY_HEARTBEAT
        );
        assert_eq!(REPLY_HEARTBEAT.len(), 18);
        assert_eq!(REPLY_EVENT.len(), 24);
        assert_eq!(REPLY_INVALID.len(), 30);
    }

    // ---- helpers for socket tests -----------------------------------------------------------

    fn sub(ctx: &zmq::Context, ep: &str) -> zmq::Socket {
        let s = ctx.socket(zmq::SUB).expect("sub socket");
        s.set_linger(0).expect("linger");
        s.set_rcvtimeo(RECV_TIMEOUT_MS).expect("rcvtimeo");
        s.set_subscribe(b"").expect("subscribe");
        s.connect(ep).expect("connect");
        s
    }

    fn recv_n(s: &zmq::Socket, n: usize) -> Vec<Vec<Vec<u8>>> {
        (0..n)
            .map(|i| {
                s.recv_multipart(0)
                    .unwrap_or_else(|e| panic!("message {i}/{n}: {e}"))
            })
            .collect()
    }

    fn assert_no_more(s: &zmq::Socket) {
        s.set_rcvtimeo(100).expect("rcvtimeo");
        assert!(s.recv_multipart(0).is_err(), "unexpected extra message");
    }

    fn header(m: &[Vec<u8>]) -> Value {
        serde_json::from_slice(&m[1]).expect("header JSON")
    }

    fn floats(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn base_cfg() -> SimConfig {
        SimConfig {
            data_port: 0,
            channels: vec![0, 2, 5, 7],
            block: BlockSize::Fixed(16),
            realtime: false,
            max_blocks: Some(5),
            ..SimConfig::default()
        }
    }

    /// Runs a simulator to completion and returns (stats, messages).
    fn run_all(cfg: SimConfig) -> (SimStats, Vec<Vec<Vec<u8>>>) {
        let ctx = zmq::Context::new();
        let sim = Simulator::start(cfg, &ctx, None).expect("start");
        let s = sub(&ctx, &sim.data_endpoint());
        let stats = sim.wait();
        assert!(stats.error.is_none(), "{:?}", stats.error);
        let n = (stats.data_messages + stats.event_messages) as usize;
        let msgs = recv_n(&s, n);
        assert_no_more(&s);
        (stats, msgs)
    }

    #[test]
    fn end_to_end_stream() {
        let cfg = SimConfig {
            ttl_every_blocks: Some(2),
            ..base_cfg()
        };
        let wrap = pattern_wrap(7);
        let sig = cfg.signal.clone();
        let (stats, msgs) = run_all(cfg);
        assert_eq!(stats.blocks, 5);
        assert_eq!(stats.data_messages, 20);
        assert_eq!(stats.event_messages, 3);
        assert!(stats.hwm_dropped_unknown);
        assert_eq!(msgs.len(), 23);
        assert_eq!(sig, Signal::Pattern { wrap });

        let mut idx = 0;
        let mut expect_msg = 1i64;
        let mut ttl_state = 0u8;
        for block in 0..5i64 {
            let sample_num = block * 16;
            if block % 2 == 0 {
                let m = &msgs[idx];
                idx += 1;
                assert_eq!(m.len(), 3);
                assert_eq!(m[0], b"EVENT\0");
                let h = header(m);
                assert_eq!(h["message_num"], expect_msg);
                expect_msg += 1;
                assert_eq!(h["type"], "event");
                assert_eq!(h["content"]["stream"], "example_data");
                assert_eq!(h["content"]["source_node"], 100);
                assert_eq!(h["content"]["type"], 3);
                assert_eq!(h["content"]["sample_num"], sample_num);
                assert_eq!(h["data_size"], 10);
                assert!(h["timestamp"].as_i64().is_some());
                ttl_state ^= 1;
                let mut p = vec![0u8, ttl_state];
                p.extend_from_slice(&u64::from(ttl_state).to_le_bytes());
                assert_eq!(m[2], p);
            }
            for &ch in &[0u32, 2, 5, 7] {
                let m = &msgs[idx];
                idx += 1;
                assert_eq!(m.len(), 3);
                assert_eq!(m[0], b"DATA\0");
                let text = std::str::from_utf8(&m[1]).expect("utf8");
                assert!(text.contains("\r\n  \"content\": {\r\n"));
                assert!(!text.ends_with('\n'));
                let h = header(m);
                let keys: Vec<&str> = h
                    .as_object()
                    .expect("obj")
                    .keys()
                    .map(|s| s.as_str())
                    .collect();
                assert_eq!(keys.len(), 5);
                assert_eq!(h["message_num"], expect_msg);
                expect_msg += 1;
                assert_eq!(h["type"], "data");
                let c = &h["content"];
                assert_eq!(c["stream"], "example_data");
                assert_eq!(c["channel_num"], ch);
                assert_eq!(c["channel_name"], format!("CH{}", ch + 1));
                assert_eq!(c["num_samples"], 16);
                assert_eq!(c["sample_num"], sample_num);
                assert_eq!(c["sample_rate"].as_f64(), Some(30000.0));
                assert_eq!(h["data_size"], 64);
                let ts = h["timestamp"].as_i64().expect("timestamp");
                assert!((now_ms() - ts).abs() < 60_000);
                assert_eq!(m[2].len(), 64);
                let v = floats(&m[2]);
                for (i, x) in v.iter().enumerate() {
                    assert_eq!(*x, signal_value(&sig, ch, sample_num + i as i64));
                }
            }
        }
        assert_eq!(idx, msgs.len());
    }

    #[test]
    fn heartbeat_and_stop_while_waiting() {
        let ctx = zmq::Context::new();
        let cfg = SimConfig {
            data_port: 0,
            ..SimConfig::default()
        };
        let sim = Simulator::start(cfg, &ctx, None).expect("start");
        let req = ctx.socket(zmq::REQ).expect("req");
        req.set_linger(0).expect("linger");
        req.set_rcvtimeo(RECV_TIMEOUT_MS).expect("rcvtimeo");
        req.connect(&sim.heartbeat_endpoint().expect("hb"))
            .expect("connect");
        let cases: [(&[u8], &[u8]); 3] = [
            (
                br#"{"application": "test", "uuid": "abc", "type": "heartbeat"}"#,
                b"heartbeat received",
            ),
            (b"{not json", b"JSON message could not be read"),
            (br#"{"type": "event"}"#, b"message correctly parsed"),
        ];
        for (request, reply) in cases {
            req.send(request, 0).expect("send");
            let r = req.recv_bytes(0).expect("reply");
            assert_eq!(r, reply);
        }
        assert_eq!(sim.stats().heartbeats_answered, 3);
        assert!(!sim.is_finished());
        let t = Instant::now();
        let stats = sim.stop();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(stats.blocks, 0);
        assert_eq!(stats.heartbeats_answered, 3);
    }

    #[test]
    fn stop_while_streaming_realtime() {
        let ctx = zmq::Context::new();
        let cfg = SimConfig {
            data_port: 0,
            wait_for_subscriber: false,
            heartbeat: false,
            ..SimConfig::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let obs: BlockObserver = Box::new(move |sn, n, chans, _t| {
            let _ = tx.send((sn, n, chans));
        });
        let sim = Simulator::start(cfg, &ctx, Some(obs)).expect("start");
        assert_eq!(sim.heartbeat_port(), None);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv_timeout(Duration::from_secs(5)).expect("block"));
        }
        assert_eq!(got, vec![(0, 696, 8), (696, 696, 8), (1392, 696, 8)]);
        let t = Instant::now();
        let stats = sim.stop();
        assert!(t.elapsed() < Duration::from_millis(500));
        assert!(stats.blocks >= 3);
        assert_eq!(stats.data_messages, stats.blocks * 8);
    }

    #[test]
    fn duration_realtime_pacing() {
        let ctx = zmq::Context::new();
        let cfg = SimConfig {
            data_port: 0,
            wait_for_subscriber: false,
            heartbeat: false,
            channels: vec![0],
            block: BlockSize::Fixed(300), // 10 ms at 30 kHz
            duration: Some(Duration::from_millis(200)),
            ..SimConfig::default()
        };
        let t = Instant::now();
        let sim = Simulator::start(cfg, &ctx, None).expect("start");
        let stats = sim.wait();
        let el = t.elapsed();
        assert!(
            el >= Duration::from_millis(180) && el < Duration::from_secs(3),
            "{el:?}"
        );
        // Blocks 0..20 are due before 200 ms (block 0 at t0); allow scheduling slack.
        assert!((15..=20).contains(&stats.blocks), "{}", stats.blocks);
    }

    fn message_nums(msgs: &[Vec<Vec<u8>>]) -> Vec<i64> {
        msgs.iter()
            .map(|m| header(m)["message_num"].as_i64().expect("num"))
            .collect()
    }

    fn sample_nums(msgs: &[Vec<Vec<u8>>]) -> Vec<i64> {
        msgs.iter()
            .map(|m| header(m)["content"]["sample_num"].as_i64().expect("sn"))
            .collect()
    }

    #[test]
    fn fault_restart() {
        let cfg = SimConfig {
            channels: vec![3],
            max_blocks: Some(6),
            start_sample: 1000,
            faults: Faults {
                restart_every_blocks: Some(2),
                ..Faults::default()
            },
            ..base_cfg()
        };
        let (stats, msgs) = run_all(cfg);
        assert_eq!(stats.restarts, 2);
        assert_eq!(message_nums(&msgs), vec![1, 2, 1, 2, 1, 2]);
        assert_eq!(sample_nums(&msgs), vec![1000, 1016, 1032, 1048, 1064, 1080]);
    }

    #[test]
    fn fault_loop() {
        let cfg = SimConfig {
            channels: vec![1],
            max_blocks: Some(5),
            start_sample: 100,
            faults: Faults {
                loop_every_blocks: Some(2),
                ..Faults::default()
            },
            ..base_cfg()
        };
        let (stats, msgs) = run_all(cfg);
        assert_eq!(stats.loops, 2);
        assert_eq!(message_nums(&msgs), vec![1, 2, 3, 4, 5]);
        assert_eq!(sample_nums(&msgs), vec![100, 116, 100, 116, 100]);
    }

    #[test]
    fn fault_channel_change() {
        let cfg = SimConfig {
            channels: vec![0, 1],
            max_blocks: Some(4),
            faults: Faults {
                channel_change: Some((2, vec![9, 4])),
                ..Faults::default()
            },
            ..base_cfg()
        };
        let (_, msgs) = run_all(cfg);
        let chans: Vec<i64> = msgs
            .iter()
            .map(|m| header(m)["content"]["channel_num"].as_i64().expect("ch"))
            .collect();
        assert_eq!(chans, vec![0, 1, 0, 1, 4, 9, 4, 9]);
        assert_eq!(sample_nums(&msgs), vec![0, 0, 16, 16, 32, 32, 48, 48]);
    }

    #[test]
    fn fault_drops() {
        let cfg = SimConfig {
            channels: (0..8).collect(),
            max_blocks: Some(20),
            faults: Faults {
                drop_probability: 0.5,
                seed: 42,
                ..Faults::default()
            },
            ..base_cfg()
        };
        let (stats, msgs) = run_all(cfg);
        assert!(stats.dropped_by_fault > 20 && stats.dropped_by_fault < 140);
        assert_eq!(stats.data_messages + stats.dropped_by_fault, 160);
        assert_eq!(msgs.len() as u64, stats.data_messages);
        let nums = message_nums(&msgs);
        assert!(nums.windows(2).all(|w| w[1] > w[0]));
        let last = *nums.last().expect("some");
        let gaps = last - nums.len() as i64; // numbers consumed but never seen
        let tail = 160 - last; // drops after the last received message
        assert_eq!((gaps + tail) as u64, stats.dropped_by_fault);
    }

    #[test]
    fn publisher_low_level() {
        let ctx = zmq::Context::new();
        let mut p = Publisher::bind_with_heartbeat(&ctx, "127.0.0.1", 0).expect("bind");
        let s = sub(&ctx, &p.connect_endpoint());
        p.wait_for_subscriber(Duration::from_secs(5)).expect("sub");
        p.set_message_num(i64::from(i32::MAX));
        p.send_data("st", 5, None, 42, 29999.9, &[0.0, -12.5], None)
            .expect("data");
        p.send_event_bytes("st", 100, 43, &[], Some(1)).expect("ev");
        assert_eq!(p.next_message_num(), i64::from(i32::MIN) + 1);
        p.set_message_num(1);
        p.send_spike("st", "Tetrode 1", 44, 2, 2, 0, &[1.0, 2.0, 3.0, 4.0], None)
            .expect("spike");
        assert!(p.send_spike("st", "x", 0, 2, 2, 0, &[1.0], None).is_err());
        p.send_data("CH\u{e4}3", 0, Some("CH\u{e4}3"), 0, 30000.0, &[1.0], None)
            .expect("utf8");
        p.send_raw(&[b"garbage"]).expect("raw");
        let m = recv_n(&s, 5);
        let h0 = header(&m[0]);
        assert_eq!(h0["message_num"], i64::from(i32::MAX));
        assert_eq!(h0["content"]["sample_rate"].as_f64(), Some(29999.900390625));
        assert!(std::str::from_utf8(&m[0][1])
            .expect("utf8")
            .contains("\"sample_rate\": 29999.900390625\r\n"));
        assert_eq!(floats(&m[0][2]), vec![0.0, -12.5]);
        assert_eq!(m[1].len(), 2);
        assert_eq!(m[1][0], b"EVENT\0");
        assert_eq!(header(&m[1])["message_num"], i64::from(i32::MIN));
        assert_eq!(header(&m[1])["data_size"], 0);
        let h2 = header(&m[2]);
        assert_eq!(m[2][0], b"EVENT\0");
        assert_eq!(h2["message_num"], 1);
        assert_eq!(h2["type"], "spike");
        assert!(h2.get("data_size").is_none());
        assert_eq!(floats(&m[2][2]), vec![1.0, 2.0, 3.0, 4.0]);
        // JUCE header-length bug: two non-ASCII chars → 2 bytes missing → invalid JSON.
        assert!(serde_json::from_slice::<Value>(&m[3][1]).is_err());
        let full = juce_data_header(2, "CH\u{e4}3", 0, Some("CH\u{e4}3"), 1, 0, 30000.0, None);
        assert_eq!(m[3][1], &full.as_bytes()[..full.len() - 2]);
        assert_eq!(m[4], vec![b"garbage".to_vec()]);

        let req = ctx.socket(zmq::REQ).expect("req");
        req.set_linger(0).expect("linger");
        req.set_rcvtimeo(RECV_TIMEOUT_MS).expect("rcvtimeo");
        let hp = p.heartbeat_port().expect("hb port");
        assert_eq!(hp, p.port() + 1);
        req.connect(&format!("tcp://127.0.0.1:{hp}"))
            .expect("connect");
        req.send("{}", 0).expect("send");
        assert_eq!(req.recv_bytes(0).expect("reply"), b"heartbeat received");
        assert_eq!(p.heartbeats_answered(), 1);
    }

    #[test]
    fn invalid_configs_rejected() {
        let ctx = zmq::Context::new();
        for cfg in [
            SimConfig {
                block: BlockSize::Fixed(0),
                ..base_cfg()
            },
            SimConfig {
                sample_rate: f64::NAN,
                ..base_cfg()
            },
            SimConfig {
                block: BlockSize::Jitter { min: 5, max: 4 },
                ..base_cfg()
            },
        ] {
            assert!(Simulator::start(cfg, &ctx, None).is_err());
        }
    }

    #[test]
    fn jitter_and_alternating_sizes() {
        for (block, check) in [
            (
                BlockSize::Alternating(696, 697),
                Box::new(|v: &[i64]| {
                    v.iter()
                        .enumerate()
                        .all(|(i, &n)| n == 696 + (i as i64 % 2))
                }) as Box<dyn Fn(&[i64]) -> bool>,
            ),
            (
                BlockSize::Jitter { min: 10, max: 20 },
                Box::new(|v: &[i64]| v.iter().all(|&n| (10..=20).contains(&n))),
            ),
        ] {
            let cfg = SimConfig {
                channels: vec![0],
                max_blocks: Some(8),
                block,
                ..base_cfg()
            };
            let (_, msgs) = run_all(cfg);
            let ns: Vec<i64> = msgs
                .iter()
                .map(|m| header(m)["content"]["num_samples"].as_i64().expect("n"))
                .collect();
            assert!(check(&ns), "{ns:?}");
            let sn = sample_nums(&msgs);
            for i in 1..sn.len() {
                assert_eq!(sn[i], sn[i - 1] + ns[i - 1]);
            }
        }
    }
}
