//! A hand-written scanner for the one header layout the plugin emits for continuous data, tried
//! before the general JSON parse.
//!
//! JUCE writes every DATA header the same way (reference spec §1.3, §1.8): CRLF line ends,
//! 2-space indentation, keys in a fixed order, no trailing newline:
//!
//! ```text
//! {
//!   "message_num": 1,
//!   "type": "data",
//!   "content": {
//!     "stream": "example_data",
//!     "channel_num": 0,
//!     "channel_name": "CH1",        (plugin ≥ 0.3.3 only)
//!     "num_samples": 4,
//!     "sample_num": 30720,
//!     "sample_rate": 30000.0
//!   },
//!   "data_size": 16,
//!   "timestamp": 1753228800000      (plugin ≥ 0.3.2 only)
//! }
//! ```
//!
//! [`scan_data_header`] walks exactly that text and nothing else. It answers `None` for anything
//! it does not recognise byte for byte (another layout, escapes in a string, a number JSON would
//! read differently…), and the caller then uses the full JSON parse, so the scanner can only make
//! things faster, never different: whenever it answers, `serde_json` gives the same header
//! (`tests/header_scan.rs` checks that on generated and mutated headers). The general parse costs
//! several hundred ns per message; this scan is a single pass over ~280 bytes.

use super::protocol::DataHeader;
use std::borrow::Cow;
use std::ops::Range;

/// A cursor over the header bytes.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    /// Consumes `lit` exactly.
    #[inline]
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        let have = self.b.get(self.i..self.i + lit.len())?;
        // Eight bytes at a time (the literals are short: a library memcmp call costs more).
        let mut a = have.chunks_exact(8);
        let mut b = lit.chunks_exact(8);
        for (x, y) in (&mut a).zip(&mut b) {
            let x = u64::from_ne_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
            let y = u64::from_ne_bytes([y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]]);
            if x != y {
                return None;
            }
        }
        if a.remainder().iter().zip(b.remainder()).any(|(x, y)| x != y) {
            return None;
        }
        self.i += lit.len();
        Some(())
    }

    /// A JSON string without escapes or control characters: its byte range in the frame
    /// (checked to be UTF-8).
    #[inline]
    fn string(&mut self) -> Option<Range<usize>> {
        self.lit(b"\"")?;
        let start = self.i;
        let rest = self.b.get(start..)?;
        let end = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[end] != b'"' {
            return None;
        }
        self.i = start + end;
        let s = &self.b[start..self.i];
        if !s.is_ascii() {
            std::str::from_utf8(s).ok()?;
        }
        self.i += 1;
        Some(start..self.i - 1)
    }

    /// A JSON integer that fits an `i64` (`-?(0|[1-9][0-9]*)`, no fraction or exponent).
    #[inline]
    fn int(&mut self) -> Option<i64> {
        let neg = self.b.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let digits = self.b.get(start..)?;
        let n = digits
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        // No leading zeros; and `-0` is a float to JSON (an integer field rejects it).
        if n == 0 || (n > 1 && digits[0] == b'0') || (neg && n == 1 && digits[0] == b'0') {
            return None;
        }
        self.i = start + n;
        // A fraction or exponent would make it a float: not ours.
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        if n <= 18 {
            // At most 18 digits cannot overflow an i64.
            let mut v: i64 = 0;
            for &c in &digits[..n] {
                v = v * 10 + i64::from(c - b'0');
            }
            return Some(if neg { -v } else { v });
        }
        // Accumulate negatively so that i64::MIN fits.
        let mut v: i64 = 0;
        for &c in &digits[..n] {
            v = v.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
        }
        if neg {
            Some(v)
        } else {
            v.checked_neg()
        }
    }

    /// A JSON number read as `f64` (grammar checked here, value by the standard parser, which
    /// rounds correctly like serde_json). `30000.0`-style integral values take a shortcut.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        let b = self.b;
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let int_len = i - int_start;
        if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
            return None;
        }
        let mut simple = int_len <= 15; // exactly representable, no rounding question
        if b.get(i) == Some(&b'.') {
            i += 1;
            let f = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == f {
                return None;
            }
            simple &= b[f..i].iter().all(|&c| c == b'0');
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let e = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == e {
                return None;
            }
            simple = false;
        }
        self.i = i;
        if simple {
            let mut v: i64 = 0;
            for &c in &b[int_start..int_start + int_len] {
                v = v * 10 + i64::from(c - b'0');
            }
            let v = v as f64;
            return Some(if b[start] == b'-' { -v } else { v });
        }
        // The slice holds only ASCII digits, sign, point and exponent: valid UTF-8.
        // Out of f64's range JSON is an error, where `parse` would give infinity.
        let v: f64 = std::str::from_utf8(&b[start..i]).ok()?.parse().ok()?;
        v.is_finite().then_some(v)
    }
}

/// Where the fields of a scanned DATA header are: byte ranges of the strings and the numbers
/// themselves. Holds no borrow, so a caller can scan a buffer and still mutate it when the scan
/// fails (see `protocol::parse_header_mut`).
#[derive(Debug, Clone, PartialEq)]
pub struct Spans {
    message_num: i64,
    stream: Range<usize>,
    channel_num: i64,
    channel_name: Option<Range<usize>>,
    num_samples: i64,
    sample_num: i64,
    sample_rate: f64,
    data_size: i64,
    timestamp: Option<i64>,
}

impl Spans {
    /// The header, borrowing its strings from the same bytes that were scanned (given other
    /// bytes, a string that is not there or not UTF-8 reads as empty).
    pub fn header<'a>(&self, frame: &'a [u8]) -> DataHeader<'a> {
        let text = |r: &Range<usize>| {
            frame
                .get(r.clone())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("")
        };
        DataHeader {
            message_num: Some(self.message_num),
            stream: Cow::Borrowed(text(&self.stream)),
            channel_num: self.channel_num,
            channel_name: self.channel_name.as_ref().map(|r| Cow::Borrowed(text(r))),
            num_samples: self.num_samples,
            sample_num: self.sample_num,
            sample_rate: self.sample_rate,
            data_size: Some(self.data_size),
            timestamp: self.timestamp,
        }
    }
}

/// Scans a DATA header in the plugin's exact layout (trailing NULs ignored, as by the general
/// parse). `None`: not this layout; use the general parse.
pub fn scan_spans(frame: &[u8]) -> Option<Spans> {
    let mut end = frame.len();
    while end > 0 && frame[end - 1] == 0 {
        end -= 1;
    }
    let mut c = Cur {
        b: &frame[..end],
        i: 0,
    };
    c.lit(b"{\r\n  \"message_num\": ")?;
    let message_num = c.int()?;
    c.lit(b",\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": ")?;
    let stream = c.string()?;
    c.lit(b",\r\n    \"channel_num\": ")?;
    let channel_num = c.int()?;
    c.lit(b",\r\n    \"")?;
    let channel_name = if c.lit(b"channel_name\": ").is_some() {
        let n = c.string()?;
        c.lit(b",\r\n    \"")?;
        Some(n)
    } else {
        None
    };
    c.lit(b"num_samples\": ")?;
    let num_samples = c.int()?;
    c.lit(b",\r\n    \"sample_num\": ")?;
    let sample_num = c.int()?;
    c.lit(b",\r\n    \"sample_rate\": ")?;
    let sample_rate = c.number()?;
    c.lit(b"\r\n  },\r\n  \"data_size\": ")?;
    let data_size = c.int()?;
    let timestamp = if c.lit(b",\r\n  \"timestamp\": ").is_some() {
        Some(c.int()?)
    } else {
        None
    };
    c.lit(b"\r\n}")?;
    if c.i != c.b.len() {
        return None;
    }
    Some(Spans {
        message_num,
        stream,
        channel_num,
        channel_name,
        num_samples,
        sample_num,
        sample_rate,
        data_size,
        timestamp,
    })
}

/// [`scan_spans`] and the header in one step.
pub fn scan_data_header(frame: &[u8]) -> Option<DataHeader<'_>> {
    scan_spans(frame).map(|s| s.header(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference spec §1.8, byte for byte.
    const SPEC_1_8: &str = "{\r\n  \"message_num\": 1,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": \"example_data\",\r\n    \"channel_num\": 0,\r\n    \"channel_name\": \"CH1\",\r\n    \"num_samples\": 4,\r\n    \"sample_num\": 30720,\r\n    \"sample_rate\": 30000.0\r\n  },\r\n  \"data_size\": 16,\r\n  \"timestamp\": 1753228800000\r\n}";

    #[test]
    fn spec_example_scans_to_the_same_header_as_the_json_parse() {
        assert_eq!(SPEC_1_8.len(), 275);
        let h = scan_data_header(SPEC_1_8.as_bytes()).unwrap();
        // The field values themselves are checked against the spec in `protocol`'s tests.
        assert_eq!(
            super::super::protocol::parse_header(SPEC_1_8.as_bytes()),
            Ok(super::super::protocol::Header::Data(h.clone()))
        );
        assert_eq!(h.channel_name.as_deref(), Some("CH1"));
        assert_eq!(h.timestamp, Some(1753228800000));
        let mut nul = SPEC_1_8.as_bytes().to_vec();
        nul.push(0);
        assert_eq!(scan_data_header(&nul), Some(h));
    }

    #[test]
    fn optional_keys_and_numbers() {
        let old = SPEC_1_8
            .replace("    \"channel_name\": \"CH1\",\r\n", "")
            .replace(",\r\n  \"timestamp\": 1753228800000", "");
        let h = scan_data_header(old.as_bytes()).unwrap();
        assert_eq!(h.channel_name, None);
        assert_eq!(h.timestamp, None);
        for (txt, v) in [
            ("29999.900390625", 29999.900390625),
            ("1.0e6", 1.0e6),
            ("-0.5", -0.5),
            ("0.0", 0.0),
            // Found by tests/header_scan.rs: needs a correctly rounded parse (serde_json's
            // `float_roundtrip`, which this crate enables, agrees).
            ("-2.967940815576615e-43", -2.967940815576615e-43),
        ] {
            let s = SPEC_1_8.replace("30000.0", txt);
            assert_eq!(
                scan_data_header(s.as_bytes()).unwrap().sample_rate,
                v,
                "{txt}"
            );
        }
        let s = SPEC_1_8.replace(
            "\"sample_num\": 30720",
            "\"sample_num\": -9223372036854775808",
        );
        assert_eq!(scan_data_header(s.as_bytes()).unwrap().sample_num, i64::MIN);
    }

    #[test]
    fn anything_else_is_left_to_the_json_parse() {
        for (from, to) in [
            ("30000.0", "null"),
            ("30000.0", "30000."),
            ("30000.0", ".5"),
            ("30000.0", "+1.0"),
            ("30000.0", "inf"),
            ("30000.0", "6.2e334"),
            ("\"channel_num\": 0", "\"channel_num\": 01"),
            ("\"channel_num\": 0", "\"channel_num\": -0"),
            ("\"channel_num\": 0", "\"channel_num\": 0.0"),
            ("\"channel_num\": 0", "\"channel_num\": 9223372036854775808"),
            ("example_data", "exa\\u006dple"),
            ("example_data", "tab\there"),
            ("\r\n", "\n"),
            ("  \"type\": \"data\"", "  \"type\": \"event\""),
            ("\r\n}", "\r\n} "),
            ("\r\n}", "\r\n"),
        ] {
            let s = SPEC_1_8.replacen(from, to, 1);
            assert_eq!(scan_data_header(s.as_bytes()), None, "{from} -> {to}");
        }
        // Truncated anywhere: never scanned.
        for k in 0..SPEC_1_8.len() {
            assert_eq!(
                scan_data_header(&SPEC_1_8.as_bytes()[..k]),
                None,
                "cut at {k}"
            );
        }
    }
}
