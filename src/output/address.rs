//! Per-channel OSC address templates, compiled once and written without allocation.
//!
//! Placeholders: `{base}`, `{stream}`, `{name}`, `{ch}`, `{index}`, with an optional
//! zero-padded width (`{ch:03}`, `{index:2}`), and the original's Python `str.format` fields
//! for the channel number (`{}`, `{0}`, `{:d}`, `{:03d}`, `{0:03d}`). `{{` and `}}` are
//! literal braces. Names are sanitised for OSC (spaces, control, pattern characters and `/`
//! become `_`).
//!
//! [`AddressTemplate::compile`] parses a template at start-up (errors name the field);
//! [`AddressTemplate::write_bounded`] writes one address into a fixed buffer on a layout
//! change (the shard thread: no allocation), cutting it at a character boundary when it is
//! longer than the buffer. [`format_address`] is the allocating form for checks and tests.

use super::osc::itoa;

/// What an address template can refer to.
#[derive(Debug, Clone, Copy)]
pub struct AddressVars<'a> {
    /// `{base}`: the output's base address.
    pub base: &'a str,
    /// `{stream}`: the Open Ephys stream name.
    pub stream: &'a str,
    /// `{name}`: the channel's name (rename, else the OE name, else `CH<n+1>`).
    pub name: &'a str,
    /// `{ch}` and the original's `{}` / `{:03d}`: the OE channel number.
    pub ch: u32,
    /// `{index}`: the position in the output.
    pub index: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Ch { zero: bool, width: usize },
    Index { zero: bool, width: usize },
    Base,
    Stream,
    Name,
}

/// A parsed address template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressTemplate {
    pieces: Vec<Piece>,
}

/// Where a template writes: a growing `String`, or a fixed buffer that stops at its end.
trait Out {
    fn put(&mut self, s: &str);
}

impl Out for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// A fixed buffer; once something does not fit, everything after it is dropped too (the
/// result is the longest whole-character prefix of the full address).
struct Bounded<'a> {
    buf: &'a mut [u8],
    len: usize,
    full: bool,
}

impl Out for Bounded<'_> {
    fn put(&mut self, s: &str) {
        if self.full {
            return;
        }
        let room = self.buf.len() - self.len;
        let mut take = s.len().min(room);
        if take < s.len() {
            self.full = true;
            while !s.is_char_boundary(take) {
                take -= 1;
            }
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
    }
}

fn put_num(out: &mut dyn Out, n: u32, zero: bool, width: usize) {
    let mut digits = [0u8; 20];
    let d = itoa(u64::from(n), &mut digits);
    for _ in d.len()..width {
        out.put(if zero { "0" } else { " " });
    }
    // Digits are ASCII.
    out.put(std::str::from_utf8(d).unwrap_or("0"));
}

fn put_sanitised(out: &mut dyn Out, text: &str) {
    let mut utf8 = [0u8; 4];
    for c in text.chars() {
        let c = if c.is_whitespace()
            || c.is_control()
            || matches!(c, '#' | '*' | ',' | '?' | '[' | ']' | '{' | '}' | '/')
        {
            '_'
        } else {
            c
        };
        out.put(c.encode_utf8(&mut utf8));
    }
}

impl AddressTemplate {
    /// Parses `template`.
    ///
    /// # Errors
    /// An unclosed or single brace, an unknown field or an unsupported format spec.
    pub fn compile(template: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let b = template.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' if b.get(i + 1) == Some(&b'{') => {
                    lit.push('{');
                    i += 2;
                }
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    lit.push('}');
                    i += 2;
                }
                b'{' => {
                    let end = template[i..]
                        .find('}')
                        .map(|e| i + e)
                        .ok_or_else(|| format!("unclosed '{{' in address template '{template}'"))?;
                    let field = &template[i + 1..end];
                    let (key, spec) = field.split_once(':').unwrap_or((field, ""));
                    let spec = spec.strip_suffix('d').unwrap_or(spec);
                    let width = || -> Result<(bool, usize), String> {
                        if spec.is_empty() {
                            return Ok((false, 0));
                        }
                        let zero = spec.starts_with('0') && spec.len() > 1;
                        spec.parse::<usize>().map(|w| (zero, w)).map_err(|_| {
                            format!(
                                "unsupported format '{{{field}}}' in address template '{template}'"
                            )
                        })
                    };
                    let piece = match key {
                        "" | "0" | "ch" => {
                            let (zero, width) = width()?;
                            Piece::Ch { zero, width }
                        }
                        "index" => {
                            let (zero, width) = width()?;
                            Piece::Index { zero, width }
                        }
                        "base" => Piece::Base,
                        "stream" if spec.is_empty() => Piece::Stream,
                        "name" if spec.is_empty() => Piece::Name,
                        _ => {
                            return Err(format!(
                                "unknown field '{{{field}}}' in address template '{template}' (use {{base}}, {{stream}}, {{name}}, {{ch}}, {{ch:03}}, {{index}}, or the original's {{:03d}})"
                            ))
                        }
                    };
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(piece);
                    i = end + 1;
                }
                b'}' => return Err(format!("single '}}' in address template '{template}'")),
                _ => {
                    let next = template[i..].find(['{', '}']).map_or(b.len(), |e| i + e);
                    lit.push_str(&template[i..next]);
                    i = next;
                }
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(AddressTemplate { pieces })
    }

    fn write(&self, v: &AddressVars<'_>, out: &mut dyn Out) {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.put(s),
                Piece::Ch { zero, width } => put_num(out, v.ch, *zero, *width),
                Piece::Index { zero, width } => put_num(out, v.index, *zero, *width),
                Piece::Base => out.put(v.base),
                Piece::Stream => put_sanitised(out, v.stream),
                Piece::Name => put_sanitised(out, v.name),
            }
        }
    }

    /// Writes the address for `v` into `buf` (no allocation), cut at a character boundary
    /// if longer; returns its length.
    pub fn write_bounded(&self, v: &AddressVars<'_>, buf: &mut [u8]) -> usize {
        let mut b = Bounded {
            buf,
            len: 0,
            full: false,
        };
        self.write(v, &mut b);
        b.len
    }

    /// The address for `v`.
    pub fn format(&self, v: &AddressVars<'_>) -> String {
        let mut s = String::new();
        self.write(v, &mut s);
        s
    }
}

/// Formats an address template (see the module doc).
///
/// # Errors
/// As [`AddressTemplate::compile`], and a result that does not start with `/`.
pub fn format_address(template: &str, v: &AddressVars<'_>) -> Result<String, String> {
    let out = AddressTemplate::compile(template)?.format(v);
    if !out.starts_with('/') {
        return Err(format!("address template '{template}' must start with '/'"));
    }
    Ok(out)
}

/// Checks a per-channel template: it must format and must tell channels apart (refer to
/// `{ch}`, `{index}`, `{name}` or the original's `{}`).
///
/// # Errors
/// As [`format_address`], and a template that gives two channels the same address.
pub fn validate_address_template(template: &str) -> Result<(), String> {
    let a = AddressVars {
        base: "/b",
        stream: "s",
        name: "A",
        ch: 1,
        index: 1,
    };
    let b = AddressVars {
        base: "/b",
        stream: "s",
        name: "B",
        ch: 2,
        index: 2,
    };
    if format_address(template, &a)? == format_address(template, &b)? {
        return Err(format!(
            "address template '{template}' gives every channel the same address (use {{ch}}, {{name}} or {{:03d}})"
        ));
    }
    Ok(())
}

/// The original's per-channel address (`osc.channel_address_format`, e.g. `"/ch{:03d}"` →
/// `/ch007`) for OE channel `ch`.
///
/// # Errors
/// As [`validate_address_template`].
pub fn format_channel_address(template: &str, ch: u32) -> Result<String, String> {
    validate_address_template(template)?;
    format_address(
        template,
        &AddressVars {
            base: "",
            stream: "",
            name: "",
            ch,
            index: ch,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_write_matches_the_full_address_cut_at_a_char_boundary() {
        let t = AddressTemplate::compile("{base}/{name}/ch{ch:03}").unwrap();
        let v = AddressVars {
            base: "/oe",
            stream: "",
            name: "é名前 x",
            ch: 7,
            index: 0,
        };
        let full = t.format(&v);
        assert_eq!(full, "/oe/é名前_x/ch007");
        for cap in 0..full.len() + 3 {
            let mut buf = vec![0u8; cap];
            let n = t.write_bounded(&v, &mut buf);
            let mut cut = cap.min(full.len());
            while !full.is_char_boundary(cut) {
                cut -= 1;
            }
            assert_eq!(&buf[..n], &full.as_bytes()[..cut], "cap {cap}");
        }
    }

    #[test]
    fn widths_and_spaces() {
        let t = AddressTemplate::compile("/c{ch:5}/{index:04}").unwrap();
        let v = AddressVars {
            base: "",
            stream: "",
            name: "",
            ch: 12,
            index: 3,
        };
        assert_eq!(t.format(&v), "/c   12/0003");
    }
}
