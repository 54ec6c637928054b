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
//! (`tests/header_scan.rs` checks that on generated and mutated headers, and that every intact
//! DATA header of the real GUI captures is scanned).
//!
//! ## How it is fast
//!
//! One pass, a word (8 bytes) at a time wherever the layout allows, with every rare case out of
//! line (`int_bytewise`, `string_bytewise`, `number_general`):
//!
//! * the literal text between the fields as fixed-size compares, which the compiler turns into
//!   a few 16-byte loads and compares (`Cur::lit`);
//! * integers from one or two words: the digit count from the word's digit values, the value by
//!   the SWAR conversion (three multiplications for eight digits, `eight_digits`);
//! * strings searched eight bytes at a time for the closing quote, stopping as well at anything
//!   a plain string cannot hold (escape, control character, non-ASCII), which goes byte by byte;
//! * `sample_rate` in the plugin's `D.0` form read like an integer;
//! * the header built in the scan, its strings borrowed from the frame; ASCII text is not
//!   validated a second time (`ascii_str`: the one `unsafe` block of the ingest code, with its
//!   `// SAFETY:` argument).
//!
//! The cursor is a slice copied in and out of the slow paths, so it stays in registers.
//!
//! Measured with the scanner of commit 119a42a against 14a6f88's (the same session, back to
//! back, on the 2-vCPU AMD EPYC VM shared with other jobs; criterion ± ~25 % there):
//!
//! | `cargo bench --bench assemble -- parse_header` | 14a6f88 | 119a42a |
//! |---|---|---|
//! | `scanner` (this function) | 139–162 ns | 42–46 ns |
//! | `receiver_path` (`protocol::parse_header_fast`) | 114–116 ns | 49–53 ns |
//! | `json_parse` (serde_json, for scale) | 483–570 ns | 503–528 ns |
//!
//! and in instructions per header (callgrind, stable to the instruction; `examples/scan_probe`,
//! whose doc has the command): `scan` 2 161 → 656 Ir, `path` 2 168 → 728 Ir, `cycle` (2 048
//! different headers, names `CH1`…`CH256`) 2 149 → 670 Ir; the JSON parse is 7 437 Ir.

use super::protocol::DataHeader;
use std::borrow::Cow;

/// `0x01` in every byte of a word; `ONES * c` is `c` in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The first eight bytes as a little-endian word (the first byte lowest), if there are eight.
#[inline(always)]
fn word(b: &[u8]) -> Option<u64> {
    b.first_chunk::<8>().map(|w| u64::from_le_bytes(*w))
}

/// A word of ASCII bytes as digit values (`w` minus `'0'` in every byte): 0–9 in the bytes
/// that are digits, exact up to and including the first byte that is not (a byte below `'0'`
/// borrows from the next one, which only ever follows a non-digit).
#[inline(always)]
fn digit_values(w: u64) -> u64 {
    w.wrapping_sub(ONES * b'0' as u64)
}

/// The number of leading digits (0–8) of a word of digit values ([`digit_values`]): a byte is
/// a digit when its value is at most 9, i.e. when neither it nor it plus `0x76` has the high
/// bit set (a carry out of a byte needs a value ≥ `0x8A`, which is itself flagged).
#[inline(always)]
fn digit_count(x: u64) -> usize {
    let non_digits = (x | x.wrapping_add(ONES * 0x76)) & HIGHS;
    (non_digits.trailing_zeros() / 8) as usize
}

/// The value of eight decimal digits, given as digit values 0–9 (not ASCII), the most
/// significant in the lowest byte: three multiplications instead of eight (the well-known SWAR
/// conversion, as in simdjson's `parse_eight_digits_unrolled`).
#[inline(always)]
fn eight_digits(x: u64) -> u64 {
    let x = x.wrapping_mul(10).wrapping_add(x >> 8);
    let lo = (x & 0x0000_00FF_0000_00FF).wrapping_mul(0x000F_4240_0000_0064);
    let hi = ((x >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(0x0000_2710_0000_0001);
    lo.wrapping_add(hi) >> 32
}

/// The value of the `n` (1–8) leading digit values of `x` (known to be digits).
#[inline(always)]
fn leading_digits(x: u64, n: usize) -> u64 {
    // Shifted up, the digits sit where an 8-digit number with leading zeros would, and the
    // bytes past them (perhaps not exact) drop out.
    eight_digits(x << ((64 - 8 * n) & 63))
}

/// The first byte of `w` that ends a plain string: `"`, `\`, a control character or a non-ASCII
/// byte, flagged by its high bit in a word exact up to and including that byte (the usual
/// has-zero-byte trick, whose borrows only reach bytes after a flagged one).
#[inline(always)]
fn string_stops(w: u64) -> u64 {
    let q = w ^ (ONES * b'"' as u64);
    let bs = w ^ (ONES * b'\\' as u64);
    let quote = q.wrapping_sub(ONES) & !q;
    let backslash = bs.wrapping_sub(ONES) & !bs;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control | w) & HIGHS
}

/// Bytes already known to be ASCII as text, without validating them a second time.
#[inline(always)]
#[allow(unsafe_code)] // the ingest code's one `unsafe` block
fn ascii_str(s: &[u8]) -> &str {
    debug_assert!(s.is_ascii());
    // SAFETY: the only caller, `Cur::string`, passes bytes it has just read word by word and
    // found free of any byte with the high bit set (`string_stops` flags them): ASCII, which
    // is valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(s) }
}

/// The bytes of the header not read yet. Copied in and out of the out-of-line slow paths (never
/// borrowed by them), so that it lives in registers on the fast path.
#[derive(Clone, Copy)]
struct Cur<'a> {
    rest: &'a [u8],
}

impl<'a> Cur<'a> {
    /// Consumes `lit` exactly: fixed-size compares, which the compiler expands into a few wide
    /// loads (no `memcmp` call) when at most 32 bytes long, so longer literals go in pieces.
    #[inline(always)]
    fn lit<const L: usize>(&mut self, lit: &[u8; L]) -> Option<()> {
        let have = self.rest.first_chunk::<L>()?;
        let mut same = true;
        let mut k = 0;
        while k < L {
            let n = if L - k > 32 { 32 } else { L - k };
            same &= have[k..k + n] == lit[k..k + n];
            k += n;
        }
        if !same {
            return None;
        }
        self.rest = &self.rest[L..];
        Some(())
    }

    /// A JSON string without escapes or control characters, its opening quote already
    /// consumed: its text, borrowed from the frame. Eight bytes at a time while they are plain
    /// ASCII; anything else goes byte by byte ([`string_bytewise`]).
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let s = self.rest;
        let mut i = 0;
        while let Some(w) = s.get(i..).and_then(word) {
            let stops = string_stops(w);
            if stops != 0 {
                let k = i + (stops.trailing_zeros() / 8) as usize;
                if s.get(k) != Some(&b'"') {
                    break; // an escape, a control character or UTF-8
                }
                self.rest = &s[k + 1..];
                return Some(ascii_str(&s[..k]));
            }
            i += 8;
        }
        let (text, rest) = string_bytewise(s)?;
        self.rest = rest;
        Some(text)
    }

    /// A JSON integer that fits an `i64` (`-?(0|[1-9][0-9]*)`): up to 15 digits without a sign
    /// from one or two words (a millisecond timestamp has 13), signs and anything else by
    /// [`int_bytewise`]. A fraction or exponent after the digits is left in place, where the
    /// literal that every caller expects next (`,` or CR) rejects it.
    #[inline(always)]
    fn int(&mut self) -> Option<i64> {
        if let Some(x) = word(self.rest).map(digit_values) {
            let n = digit_count(x);
            // No digits (a sign, or not a number) and leading zeros go the long way.
            let plain = n != 0 && (n == 1 || x as u8 != 0);
            if plain && n < 8 {
                self.rest = &self.rest[n..];
                return Some(leading_digits(x, n) as i64);
            }
            if let (true, Some(x2)) = (plain, self.rest.get(8..).and_then(word).map(digit_values)) {
                let n2 = digit_count(x2);
                if n2 < 8 {
                    let hi = eight_digits(x);
                    let lo = if n2 == 0 { 0 } else { leading_digits(x2, n2) };
                    self.rest = &self.rest[8 + n2..];
                    // At most 15 digits: far from overflowing.
                    return Some((hi * POW10[n2 & 7] + lo) as i64);
                }
            }
        }
        let (v, rest) = int_bytewise(self.rest)?;
        self.rest = rest;
        Some(v)
    }

    /// A JSON number read as `f64`, followed by CR (the `sample_rate` line's end, left in
    /// place). The plugin's usual form, 1–7 digits and `.0` (`30000.0`), is read from one word
    /// and the three bytes after the digits here; anything else by [`number_general`].
    #[inline(always)]
    fn number(&mut self) -> Option<f64> {
        if let Some(x) = word(self.rest).map(digit_values) {
            let n = digit_count(x);
            let plain = n.wrapping_sub(1) < 7 && (n == 1 || x as u8 != 0);
            if plain && self.rest.get(n..n + 3) == Some(b".0\r") {
                self.rest = &self.rest[n + 2..];
                // At most 7 digits: exact in an f64, as serde_json reads it.
                return Some(leading_digits(x, n) as f64);
            }
        }
        let (v, rest) = number_general(self.rest)?;
        self.rest = rest;
        Some(v)
    }
}

/// 10ⁿ for the digit counts of one word.
const POW10: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// [`Cur::int`] byte by byte: signs, leading zeros, 16 digits and more, the frame's last bytes.
#[inline(never)]
fn int_bytewise(s: &[u8]) -> Option<(i64, &[u8])> {
    let neg = s.first() == Some(&b'-');
    let digits = if neg { &s[1..] } else { s };
    let n = digits
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    // No leading zeros; and `-0` is a float to JSON (an integer field rejects it).
    if n == 0 || (n > 1 && digits[0] == b'0') || (neg && n == 1 && digits[0] == b'0') {
        return None;
    }
    let rest = &digits[n..];
    // A fraction or exponent would make it a float: not ours.
    if matches!(rest.first(), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    // Accumulate negatively so that i64::MIN fits.
    let mut v: i64 = 0;
    for &c in &digits[..n] {
        v = v.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    let v = if neg { v } else { v.checked_neg()? };
    Some((v, rest))
}

/// [`Cur::string`] byte by byte, for the rare string that is not plain ASCII (or ends within
/// eight bytes of the frame's end): its text (checked to be UTF-8) and what follows the quote.
#[inline(never)]
fn string_bytewise(s: &[u8]) -> Option<(&str, &[u8])> {
    let end = s
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    if s[end] != b'"' {
        return None;
    }
    let text = std::str::from_utf8(&s[..end]).ok()?;
    Some((text, &s[end + 1..]))
}

/// Any JSON number as `f64` (grammar checked here, value by the standard parser, which rounds
/// correctly like serde_json), and what follows it. Integral values take a shortcut.
#[inline(never)]
fn number_general(b: &[u8]) -> Option<(f64, &[u8])> {
    let mut i = 0;
    let neg = b.first() == Some(&b'-');
    if neg {
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
    if simple {
        let mut v: i64 = 0;
        for &c in &b[int_start..int_start + int_len] {
            v = v * 10 + i64::from(c - b'0');
        }
        let v = v as f64;
        return Some((if neg { -v } else { v }, &b[i..]));
    }
    // The slice holds only ASCII digits, sign, point and exponent: valid UTF-8.
    // Out of f64's range JSON is an error, where `parse` would give infinity.
    let v: f64 = std::str::from_utf8(&b[..i]).ok()?.parse().ok()?;
    v.is_finite().then_some((v, &b[i..]))
}

/// Scans a DATA header in the plugin's exact layout (trailing NULs ignored, as by the general
/// parse). `None`: not this layout; use the general parse.
pub fn scan_data_header(frame: &[u8]) -> Option<DataHeader<'_>> {
    let mut end = frame.len();
    while end > 0 && frame[end - 1] == 0 {
        end -= 1;
    }
    let mut c = Cur {
        rest: &frame[..end],
    };
    c.lit(b"{\r\n  \"message_num\": ")?;
    let message_num = c.int()?;
    c.lit(b",\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": \"")?;
    let stream = c.string()?;
    c.lit(b",\r\n    \"channel_num\": ")?;
    let channel_num = c.int()?;
    let channel_name = if c.lit(b",\r\n    \"channel_name\": \"").is_some() {
        Some(Cow::Borrowed(c.string()?))
    } else {
        None
    };
    c.lit(b",\r\n    \"num_samples\": ")?;
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
    if !c.rest.is_empty() {
        return None;
    }
    Some(DataHeader {
        message_num: Some(message_num),
        stream: Cow::Borrowed(stream),
        channel_num,
        channel_name,
        num_samples,
        sample_num,
        sample_rate,
        data_size: Some(data_size),
        timestamp,
    })
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

    /// A small deterministic generator (xorshift) for the word-level tests.
    fn words(seed: u64) -> impl Iterator<Item = u64> {
        let mut x = seed;
        std::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Some(x)
        })
    }

    #[test]
    fn word_digit_helpers_match_a_byte_loop() {
        // Every digit count, every possible first non-digit, any bytes after it.
        let mut cases = Vec::new();
        for (k, r) in words(0x9E37_79B9_7F4A_7C15).take(20_000).enumerate() {
            let mut b = r.to_le_bytes();
            let n = k % 9;
            for (j, d) in b.iter_mut().enumerate().take(n) {
                *d = b'0' + ((r >> (j * 5)) % 10) as u8;
            }
            if n < 8 {
                b[n] = (k / 9 % 256) as u8;
            }
            cases.push(b);
        }
        for b in cases {
            let w = u64::from_le_bytes(b);
            let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let x = digit_values(w);
            assert_eq!(digit_count(x), n, "{b:?}");
            for m in 1..=n {
                let v = b[..m]
                    .iter()
                    .fold(0u64, |v, &c| v * 10 + u64::from(c - b'0'));
                assert_eq!(leading_digits(x, m), v, "{b:?} first {m}");
            }
        }
    }

    #[test]
    fn string_stops_flags_the_first_byte_a_plain_string_cannot_hold() {
        let stop = |c: u8| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c);
        for (k, r) in words(0xD1B5_4A32_D192_ED03).take(20_000).enumerate() {
            let mut b = r.to_le_bytes();
            // A plain prefix of every length, then any byte, then anything.
            let p = k % 9;
            for (j, c) in b.iter_mut().enumerate().take(p) {
                *c = b' ' + 1 + ((r >> (j * 7)) % 90) as u8; // '!'..'z', may be '"' or '\'
            }
            if p < 8 {
                b[p] = (k / 9 % 256) as u8;
            }
            let w = u64::from_le_bytes(b);
            let want = b.iter().position(|&c| stop(c));
            let s = string_stops(w);
            let got = (s != 0).then(|| (s.trailing_zeros() / 8) as usize);
            assert_eq!(got, want, "{b:?}");
        }
    }

    #[test]
    fn integers_of_every_length_in_every_field() {
        let fields = [
            "\"message_num\": 1",
            "\"channel_num\": 0",
            "\"num_samples\": 4",
            "\"sample_num\": 30720",
            "\"data_size\": 16",
            "\"timestamp\": 1753228800000",
        ];
        for f in fields {
            let key = &f[..f.find(':').unwrap() + 2];
            for len in 1..=19 {
                let digits: String = "9182736450918273645".chars().take(len).collect();
                for text in [digits.clone(), format!("-{digits}")] {
                    let s = SPEC_1_8.replace(f, &format!("{key}{text}"));
                    let json = super::super::protocol::parse_header(s.as_bytes());
                    let json = match json {
                        Ok(super::super::protocol::Header::Data(h)) => Some(h),
                        _ => None,
                    };
                    assert_eq!(scan_data_header(s.as_bytes()), json, "{key}{text}");
                    // Every one of these is valid JSON with an i64 value: the scanner reads it.
                    assert!(json.is_some(), "{key}{text}");
                }
            }
        }
    }
}
