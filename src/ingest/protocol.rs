//! The Open Ephys "ZMQ Interface" wire protocol (plugin 0.3.x … 1.0.x), receive side.
//!
//! Every message on the data socket is multipart: an envelope (`DATA\0` or `EVENT\0`, NUL
//! included), a JSON header written by JUCE (multi-line, CRLF, never NUL-terminated), and for
//! data, TTL events with `data_size > 0` and spikes a binary payload. Spikes share the `EVENT\0`
//! envelope and are told apart by the header's top-level `"type"`.
//!
//! Parsing here is allocation-free for ordinary headers: strings are borrowed from the frame
//! (a `Cow` only allocates when a name contains JSON escapes) and unknown keys are skipped.

use serde::Deserialize;
use std::borrow::Cow;

/// The first frame of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `DATA\0`: continuous data, one message per channel per block.
    Data,
    /// `EVENT\0`: a TTL event or a spike (see the header's `"type"`).
    Event,
}

/// Classifies frame 0. The plugin sends the C string with its terminator (5/6 bytes); the
/// terminator-less spelling used by some mocks is accepted too.
pub fn parse_envelope(frame: &[u8]) -> Option<Envelope> {
    match frame {
        b"DATA\0" | b"DATA" => Some(Envelope::Data),
        b"EVENT\0" | b"EVENT" => Some(Envelope::Event),
        _ => None,
    }
}

/// Why a message was rejected. Every kind has its own counter; none stops the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Malformed {
    /// Frame 0 is neither `DATA\0` nor `EVENT\0`.
    BadEnvelope = 0,
    /// Fewer frames than the message type needs (e.g. DATA without payload).
    TooFewFrames,
    /// More frames than the message type has.
    TooManyFrames,
    /// The header is not valid UTF-8 JSON, is truncated (GUI 1.0 non-ASCII bug), or a key is
    /// missing or of the wrong type.
    BadHeader,
    /// The header's `"type"` is not `data`, `event` or `spike`, or disagrees with the envelope.
    UnknownType,
    /// `num_samples` is 0, negative or above the configured block-size cap.
    BadNumSamples,
    /// The payload length is not `4 · num_samples`.
    PayloadLength,
    /// `channel_num` is negative or above the configured channel cap.
    ChannelOutOfRange,
    /// `sample_rate` is missing, not finite, ≤ 0 or absurd (> 10 MHz).
    BadSampleRate,
    /// A channel message whose `num_samples` differs from the other messages of its block.
    BlockSizeMismatch,
    /// The same channel twice in one block.
    DuplicateChannel,
    /// A TTL event whose payload is not the 10-byte line/state/word record.
    BadEvent,
    /// A spike whose waveform length is not `4 · num_channels · num_samples`.
    BadSpike,
}

impl Malformed {
    /// Number of kinds (size of per-kind counter arrays).
    pub const COUNT: usize = 13;
    /// All kinds, in counter order.
    pub const ALL: [Malformed; Self::COUNT] = [
        Malformed::BadEnvelope,
        Malformed::TooFewFrames,
        Malformed::TooManyFrames,
        Malformed::BadHeader,
        Malformed::UnknownType,
        Malformed::BadNumSamples,
        Malformed::PayloadLength,
        Malformed::ChannelOutOfRange,
        Malformed::BadSampleRate,
        Malformed::BlockSizeMismatch,
        Malformed::DuplicateChannel,
        Malformed::BadEvent,
        Malformed::BadSpike,
    ];
    /// Stable snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::BadEnvelope => "bad_envelope",
            Malformed::TooFewFrames => "too_few_frames",
            Malformed::TooManyFrames => "too_many_frames",
            Malformed::BadHeader => "bad_header",
            Malformed::UnknownType => "unknown_type",
            Malformed::BadNumSamples => "bad_num_samples",
            Malformed::PayloadLength => "payload_length",
            Malformed::ChannelOutOfRange => "channel_out_of_range",
            Malformed::BadSampleRate => "bad_sample_rate",
            Malformed::BlockSizeMismatch => "block_size_mismatch",
            Malformed::DuplicateChannel => "duplicate_channel",
            Malformed::BadEvent => "bad_event",
            Malformed::BadSpike => "bad_spike",
        }
    }
}

/// A string borrowed from the frame when it has no escapes (serde's own `Cow` impl always
/// copies when wrapped in `Option`).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    message_num: Option<i64>,
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    content: Option<RawContent<'a>>,
    #[serde(borrow)]
    spike: Option<RawSpike<'a>>,
    data_size: Option<i64>,
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct RawContent<'a> {
    #[serde(borrow)]
    stream: Option<Text<'a>>,
    channel_num: Option<i64>,
    #[serde(borrow)]
    channel_name: Option<Text<'a>>,
    num_samples: Option<i64>,
    sample_num: Option<i64>,
    sample_rate: Option<f64>,
    source_node: Option<i64>,
    #[serde(rename = "type")]
    event_type: Option<i64>,
}

#[derive(Deserialize)]
struct RawSpike<'a> {
    #[serde(borrow)]
    stream: Option<Text<'a>>,
    source_node: Option<i64>,
    #[serde(borrow)]
    electrode: Option<Text<'a>>,
    sample_num: Option<i64>,
    num_channels: Option<i64>,
    num_samples: Option<i64>,
    sorted_id: Option<i64>,
}

/// Header of a continuous-data message (§1.4). Numbers are range-checked by the assembler,
/// which knows the configured caps.
#[derive(Debug, Clone, PartialEq)]
pub struct DataHeader<'a> {
    /// Shared per-plugin counter (DATA + EVENT + SPIKE), 1 at acquisition start.
    pub message_num: Option<i64>,
    /// Stream name.
    pub stream: Cow<'a, str>,
    /// 0-based local channel index (sparse when channels are deselected).
    pub channel_num: i64,
    /// OE channel name (plugin ≥ 0.3.3 only).
    pub channel_name: Option<Cow<'a, str>>,
    /// Samples in this message.
    pub num_samples: i64,
    /// Stream sample index of the first sample (shared by all channel messages of a block).
    pub sample_num: i64,
    /// Stream sample rate in Hz (a float32 widened to double by the plugin).
    pub sample_rate: f64,
    /// Payload length claimed by the header (the payload itself is the truth).
    pub data_size: Option<i64>,
    /// Sender wall clock in ms (plugin ≥ 0.3.2 only).
    pub timestamp: Option<i64>,
}

/// Header of a TTL event (§1.5).
#[derive(Debug, Clone, PartialEq)]
pub struct EventHeader<'a> {
    /// Shared message counter.
    pub message_num: Option<i64>,
    /// Stream name.
    pub stream: Cow<'a, str>,
    /// Processor id that created the event.
    pub source_node: i64,
    /// Event channel type (3 = TTL).
    pub event_type: i64,
    /// Sample index of the event.
    pub sample_num: i64,
    /// Payload length (10 for TTL, 0 → a 2-frame message).
    pub data_size: i64,
    /// Sender wall clock in ms.
    pub timestamp: Option<i64>,
}

/// Header of a spike (§1.6; key `spike`, no `data_size`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeHeader<'a> {
    /// Shared message counter.
    pub message_num: Option<i64>,
    /// Stream name.
    pub stream: Cow<'a, str>,
    /// Processor id (e.g. Spike Detector).
    pub source_node: i64,
    /// Electrode (spike channel) name.
    pub electrode: Cow<'a, str>,
    /// Sample index of the peak.
    pub sample_num: i64,
    /// Channels in the waveform.
    pub num_channels: i64,
    /// Samples per channel.
    pub num_samples: i64,
    /// Sorted unit id (0 = unsorted).
    pub sorted_id: i64,
    /// Sender wall clock in ms.
    pub timestamp: Option<i64>,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq)]
pub enum Header<'a> {
    /// Continuous data.
    Data(DataHeader<'a>),
    /// TTL event.
    Event(EventHeader<'a>),
    /// Spike.
    Spike(SpikeHeader<'a>),
}

impl Header<'_> {
    /// The shared message counter, if present.
    pub fn message_num(&self) -> Option<i64> {
        match self {
            Header::Data(h) => h.message_num,
            Header::Event(h) => h.message_num,
            Header::Spike(h) => h.message_num,
        }
    }
}

/// Parses frame 1. Trailing NULs are ignored (the plugin sends none, some clients do).
pub fn parse_header(frame: &[u8]) -> Result<Header<'_>, Malformed> {
    let mut end = frame.len();
    while end > 0 && frame[end - 1] == 0 {
        end -= 1;
    }
    let raw: RawHeader<'_> =
        serde_json::from_slice(&frame[..end]).map_err(|_| Malformed::BadHeader)?;
    match &*raw.kind.0 {
        "data" => {
            let c = raw.content.ok_or(Malformed::BadHeader)?;
            Ok(Header::Data(DataHeader {
                message_num: raw.message_num,
                stream: c.stream.ok_or(Malformed::BadHeader)?.0,
                channel_num: c.channel_num.ok_or(Malformed::BadHeader)?,
                channel_name: c.channel_name.map(|t| t.0),
                num_samples: c.num_samples.ok_or(Malformed::BadHeader)?,
                sample_num: c.sample_num.ok_or(Malformed::BadHeader)?,
                sample_rate: c.sample_rate.ok_or(Malformed::BadSampleRate)?,
                data_size: raw.data_size,
                timestamp: raw.timestamp,
            }))
        }
        "event" => {
            let c = raw.content.ok_or(Malformed::BadHeader)?;
            Ok(Header::Event(EventHeader {
                message_num: raw.message_num,
                stream: c.stream.ok_or(Malformed::BadHeader)?.0,
                source_node: c.source_node.unwrap_or(-1),
                event_type: c.event_type.ok_or(Malformed::BadHeader)?,
                sample_num: c.sample_num.ok_or(Malformed::BadHeader)?,
                data_size: raw.data_size.ok_or(Malformed::BadHeader)?,
                timestamp: raw.timestamp,
            }))
        }
        "spike" => {
            let s = raw.spike.ok_or(Malformed::BadHeader)?;
            Ok(Header::Spike(SpikeHeader {
                message_num: raw.message_num,
                stream: s.stream.ok_or(Malformed::BadHeader)?.0,
                source_node: s.source_node.unwrap_or(-1),
                electrode: s.electrode.ok_or(Malformed::BadHeader)?.0,
                sample_num: s.sample_num.ok_or(Malformed::BadHeader)?,
                num_channels: s.num_channels.ok_or(Malformed::BadHeader)?,
                num_samples: s.num_samples.ok_or(Malformed::BadHeader)?,
                sorted_id: s.sorted_id.unwrap_or(0),
                timestamp: raw.timestamp,
            }))
        }
        _ => Err(Malformed::UnknownType),
    }
}

/// Where the GUI 1.0.x non-ASCII length bug cut a header, if that is the whole damage.
///
/// The plugin sizes frame 1 in *characters*, so a header with multi-byte UTF-8 characters
/// (channel or stream names) arrives short by `bytes − characters`: the closing `}` is gone and
/// sometimes the tail of the last member (`"timestamp": 17959092234`). Returns `Some(cut)` when
/// `text[..cut]` followed by `}` is the header minus only that tail:
///
/// * the text is valid UTF-8, has multi-byte characters (excess = bytes − chars > 0) and does not
///   end with `}` (an intact header does);
/// * the cut lies in the last top-level member: when whitespace follows its value the member is
///   whole and kept (only the brace is missing); otherwise the member is dropped back to the
///   preceding top-level comma (a number cut mid-way is never trusted);
/// * the fewest bytes that can be missing (`}`; `\n}` after a `\r`; `\r\n}` after a cut value)
///   do not exceed the excess.
///
/// Whether the result is a usable header (every required key present, `content` whole) is then
/// up to the normal parser; the payload length is checked by the assembler as always.
pub fn truncated_header_cut(text: &[u8]) -> Option<usize> {
    // Cheap checks first: an intact header ends with `}` (the common case costs nothing more).
    let last = *text.iter().rev().find(|b| !b.is_ascii_whitespace())?;
    if last == b'}' || text.first() != Some(&b'{') {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?;
    let excess = s.len() - s.chars().count();
    if excess == 0 {
        return None;
    }
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    let mut last_comma = None;
    let mut colon_after_comma = false;
    let mut value_after_colon = false;
    for (i, &b) in text.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                if depth == 1 && colon_after_comma {
                    value_after_colon = true;
                }
            }
            b'{' | b'[' => {
                if depth == 1 && colon_after_comma {
                    value_after_colon = true;
                }
                depth += 1;
            }
            b'}' | b']' => depth -= 1,
            b',' if depth == 1 => {
                last_comma = Some(i);
                colon_after_comma = false;
                value_after_colon = false;
            }
            b':' if depth == 1 => colon_after_comma = true,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => {
                if depth == 1 && colon_after_comma {
                    value_after_colon = true;
                }
            }
        }
        if depth <= 0 {
            // The object closed before the end: not a tail cut.
            return None;
        }
    }
    let ends_ws = matches!(text.last(), Some(b' ' | b'\t' | b'\r' | b'\n'));
    let whole_member = depth == 1 && !in_str && ends_ws && colon_after_comma && value_after_colon;
    let (cut, missing_min) = if whole_member {
        let m = if text.ends_with(b"\n") { 1 } else { 2 };
        (text.len(), m)
    } else {
        (last_comma?, 3)
    };
    (missing_min <= excess).then_some(cut)
}

/// How a header was read by [`parse_header_fast`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPath {
    /// The plugin's exact DATA layout, by the scanner ([`super::scan`]).
    Scanned,
    /// The full JSON parse (events, spikes, any other layout).
    Parsed,
    /// The full JSON parse of a header repaired after the non-ASCII length bug.
    Repaired,
}

/// Parses frame 1 held in `buf[..len]`, repairing a header cut by the GUI 1.0.x non-ASCII
/// length bug (see [`truncated_header_cut`]) in place: the closing `}` is written into `buf`
/// (which therefore needs one spare byte past the cut; the receiver's header buffer has it).
/// Returns the header and whether it was repaired. Allocation-free like [`parse_header`].
pub fn parse_header_mut(buf: &mut [u8], len: usize) -> Result<(Header<'_>, bool), Malformed> {
    parse_header_fast(buf, len).map(|(h, p)| (h, p == HeaderPath::Repaired))
}

/// [`parse_header_mut`] with the scanner first: a DATA header in the plugin's exact layout is
/// read by [`super::scan::scan_data_header`] (one pass, no JSON parser); anything else (events,
/// spikes, other layouts, repairs) falls back to the full parse, and the path taken is returned
/// so the receiver can count the fallbacks. The result is the same either way
/// (`tests/header_scan.rs`).
pub fn parse_header_fast(
    buf: &mut [u8],
    len: usize,
) -> Result<(Header<'_>, HeaderPath), Malformed> {
    let len = len.min(buf.len());
    let mut end = len;
    while end > 0 && buf[end - 1] == 0 {
        end -= 1;
    }
    if buf[..end].last() == Some(&b'}') {
        // A text ending in `}` is never repaired (`truncated_header_cut` says `None` at once),
        // and only such a text can be in the scanner's layout: this branch reads `buf` only.
        let text: &[u8] = &buf[..end];
        return match super::scan::scan_data_header(text) {
            Some(h) => Ok((Header::Data(h), HeaderPath::Scanned)),
            None => parse_header(text).map(|h| (h, HeaderPath::Parsed)),
        };
    }
    match truncated_header_cut(&buf[..end]) {
        Some(cut) if cut < buf.len() => {
            buf[cut] = b'}';
            parse_header(&buf[..cut + 1]).map(|h| (h, HeaderPath::Repaired))
        }
        _ => parse_header(&buf[..end]).map(|h| (h, HeaderPath::Parsed)),
    }
}

/// A decoded TTL payload (§1.5): 10 bytes, little-endian word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// 0-based TTL line.
    pub line: u8,
    /// 1 = on (rising), 0 = off.
    pub state: u8,
    /// State of all 64 lines after this change.
    pub word: u64,
}

/// Decodes a TTL payload; anything but 10 bytes is [`Malformed::BadEvent`].
pub fn parse_ttl(payload: &[u8]) -> Result<Ttl, Malformed> {
    if payload.len() != 10 {
        return Err(Malformed::BadEvent);
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(&payload[2..10]);
    Ok(Ttl {
        line: payload[0],
        state: payload[1],
        word: u64::from_le_bytes(w),
    })
}

/// Highest sample rate accepted (Hz); anything above is treated as a corrupt header.
pub const MAX_SAMPLE_RATE: f64 = 10_000_000.0;

/// Lowest sample rate accepted (Hz): block durations stay representable.
pub const MIN_SAMPLE_RATE: f64 = 0.001;

/// True when `rate` is a usable sample rate.
pub fn sample_rate_ok(rate: f64) -> bool {
    rate.is_finite() && (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact header of spec §1.8 (CRLF JUCE layout), typed in from the hex dump.
    const SPEC_HEADER: &str = "{\r\n  \"message_num\": 1,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": \"example_data\",\r\n    \"channel_num\": 0,\r\n    \"channel_name\": \"CH1\",\r\n    \"num_samples\": 4,\r\n    \"sample_num\": 30720,\r\n    \"sample_rate\": 30000.0\r\n  },\r\n  \"data_size\": 16,\r\n  \"timestamp\": 1753228800000\r\n}";

    #[test]
    fn envelope_with_and_without_nul() {
        assert_eq!(
            parse_envelope(&[0x44, 0x41, 0x54, 0x41, 0x00]),
            Some(Envelope::Data)
        );
        assert_eq!(parse_envelope(b"EVENT\0"), Some(Envelope::Event));
        assert_eq!(parse_envelope(b"DATA"), Some(Envelope::Data));
        assert_eq!(parse_envelope(b"DAT"), None);
        assert_eq!(parse_envelope(b""), None);
        assert_eq!(parse_envelope(b"DATA\0\0"), None);
    }

    #[test]
    fn spec_data_header() {
        assert_eq!(SPEC_HEADER.len(), 275, "§1.8 says frame 1 is 275 bytes");
        let Header::Data(h) = parse_header(SPEC_HEADER.as_bytes()).unwrap() else {
            panic!("not data")
        };
        assert_eq!(h.message_num, Some(1));
        assert_eq!(h.stream, "example_data");
        assert_eq!(h.channel_num, 0);
        assert_eq!(h.channel_name.as_deref(), Some("CH1"));
        assert_eq!(h.num_samples, 4);
        assert_eq!(h.sample_num, 30720);
        assert_eq!(h.sample_rate, 30000.0);
        assert_eq!(h.data_size, Some(16));
        assert_eq!(h.timestamp, Some(1753228800000));
        assert!(
            matches!(h.stream, Cow::Borrowed(_)),
            "no allocation for plain names"
        );
    }

    #[test]
    fn old_plugin_without_optional_keys() {
        let hdr = br#"{"message_num": 3, "type": "data", "content": {"stream": "s", "channel_num": 2, "num_samples": 8, "sample_num": 0, "sample_rate": 29999.900390625}, "data_size": 32}"#;
        let Header::Data(h) = parse_header(hdr).unwrap() else {
            panic!()
        };
        assert_eq!(h.channel_name, None);
        assert_eq!(h.timestamp, None);
        assert_eq!(h.sample_rate, 29999.900390625);
    }

    #[test]
    fn event_and_spike_headers() {
        let ev = "{\r\n  \"message_num\": 7,\r\n  \"type\": \"event\",\r\n  \"content\": {\r\n    \"stream\": \"example_data\",\r\n    \"source_node\": 100,\r\n    \"type\": 3,\r\n    \"sample_num\": 31000\r\n  },\r\n  \"data_size\": 10,\r\n  \"timestamp\": 1753228800012\r\n}";
        let Header::Event(e) = parse_header(ev.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (e.source_node, e.event_type, e.sample_num, e.data_size),
            (100, 3, 31000, 10)
        );
        let sp = br#"{"message_num": 9, "type": "spike", "spike": {"stream": "example_data", "source_node": 104, "electrode": "Stereotrode 1", "sample_num": 31005, "num_channels": 2, "num_samples": 40, "sorted_id": 0, "threshold": [-50.0, -50.0]}, "timestamp": 1753228800013}"#;
        let Header::Spike(s) = parse_header(sp).unwrap() else {
            panic!()
        };
        assert_eq!(s.electrode, "Stereotrode 1");
        assert_eq!(
            (s.num_channels, s.num_samples, s.sample_num),
            (2, 40, 31005)
        );
    }

    #[test]
    fn ttl_payload_little_endian() {
        let t = parse_ttl(&[0x02, 0x01, 0x04, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            t,
            Ttl {
                line: 2,
                state: 1,
                word: 4
            }
        );
        assert_eq!(parse_ttl(&[1, 2, 3]), Err(Malformed::BadEvent));
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        // Truncated by the GUI 1.0 non-ASCII length bug: the closing brace is missing.
        let truncated = &SPEC_HEADER.as_bytes()[..SPEC_HEADER.len() - 1];
        assert_eq!(parse_header(truncated), Err(Malformed::BadHeader));
        assert_eq!(parse_header(b""), Err(Malformed::BadHeader));
        assert_eq!(parse_header(&[0xff, 0xfe, 0x00]), Err(Malformed::BadHeader));
        assert_eq!(
            parse_header(br#"{"type": "param"}"#),
            Err(Malformed::UnknownType)
        );
        assert_eq!(
            parse_header(br#"{"type": "data"}"#),
            Err(Malformed::BadHeader)
        );
        assert_eq!(
            parse_header(br#"{"type": "data", "content": {"stream": "s", "channel_num": "0", "num_samples": 1, "sample_num": 0, "sample_rate": 1.0}}"#),
            Err(Malformed::BadHeader)
        );
        assert_eq!(
            parse_header(br#"{"type": "data", "content": {"stream": "s", "channel_num": 0, "num_samples": 1, "sample_num": 0, "sample_rate": null}}"#),
            Err(Malformed::BadSampleRate)
        );
        assert_eq!(parse_header(b"[1,2]"), Err(Malformed::BadHeader));
    }

    #[test]
    fn trailing_nul_tolerated_and_escapes_decoded() {
        let mut h = br#"{"type": "data", "content": {"stream": "a\"b\u00e4", "channel_num": 0, "num_samples": 1, "sample_num": 0, "sample_rate": 1.0}}"#.to_vec();
        h.push(0);
        let Header::Data(d) = parse_header(&h).unwrap() else {
            panic!()
        };
        assert_eq!(d.stream, "a\"bä");
    }

    #[test]
    fn sample_rate_bounds() {
        assert!(sample_rate_ok(30000.0));
        assert!(!sample_rate_ok(0.0));
        assert!(!sample_rate_ok(-1.0));
        assert!(!sample_rate_ok(f64::NAN));
        assert!(!sample_rate_ok(1e9));
        assert!(
            !sample_rate_ok(1e-300),
            "a tiny rate would overflow block durations"
        );
    }

    /// The header of spec §1.8 with a non-ASCII channel name, as the plugin sizes it: cut by
    /// `bytes − characters`.
    fn nonascii(name: &str) -> String {
        SPEC_HEADER.replace("\"CH1\"", &format!("\"{name}\""))
    }

    fn repair(text: &[u8]) -> Result<(Header<'_>, bool), Malformed> {
        // Leaked: the test wants the header to outlive the buffer.
        let buf: &'static mut Vec<u8> = Box::leak(Box::new(text.to_vec()));
        let len = buf.len();
        buf.push(0);
        parse_header_mut(buf, len)
    }

    #[test]
    fn gui_length_bug_cuts_are_repaired() {
        for name in ["Fp1-α", "Cz—ref", "通道3", "Ünïcødé7", "ch6 µV"] {
            let full = nonascii(name);
            let excess = full.len() - full.chars().count();
            let cut = &full.as_bytes()[..full.chars().count()];
            let (h, repaired) = repair(cut).unwrap();
            assert!(repaired, "{name}");
            let Header::Data(d) = h else { panic!() };
            assert_eq!(d.channel_name.as_deref(), Some(name));
            assert_eq!((d.num_samples, d.sample_num, d.channel_num), (4, 30720, 0));
            // A timestamp cut mid-way is dropped, never misread; one cut only in its line end
            // is kept.
            let want_ts = if excess <= 2 {
                Some(1753228800000)
            } else {
                None
            };
            assert_eq!(d.timestamp, want_ts, "{name}: excess {excess}");
            assert_eq!(d.data_size, Some(16));
        }
    }

    #[test]
    fn other_damage_is_not_repaired() {
        // ASCII only: a cut header is not this bug.
        assert_eq!(
            repair(&SPEC_HEADER.as_bytes()[..SPEC_HEADER.len() - 1]).err(),
            Some(Malformed::BadHeader)
        );
        // Cut deeper than the excess allows (one 2-byte character, timestamp digits gone).
        let full = nonascii("Fp1-α");
        assert_eq!(
            repair(&full.as_bytes()[..full.len() - 6]).err(),
            Some(Malformed::BadHeader)
        );
        // Cut inside `content`: the fields the bridge needs are gone.
        let at = full.find("\"num_samples\"").unwrap();
        assert!(repair(&full.as_bytes()[..at]).is_err());
        // An intact header is parsed as is.
        let (_, repaired) = repair(full.as_bytes()).unwrap();
        assert!(!repaired);
        // Corruption inside, not a tail cut.
        let bad = full.replacen("\"type\": \"data\"", "\"type\" \"data\"", 1);
        assert!(repair(&bad.as_bytes()[..bad.chars().count()]).is_err());
    }
}
