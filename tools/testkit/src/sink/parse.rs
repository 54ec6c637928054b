//! Allocation-free OSC parsing.

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
pub(super) fn osc_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    // The std's word-at-a-time NUL search (a 4096-channel type-tag string is 4 KiB).
    let nul = std::ffi::CStr::from_bytes_until_nul(b)
        .ok()?
        .to_bytes()
        .len();
    let end = (nul + 4) & !3;
    let pad = b.get(nul..end)?;
    if pad.iter().any(|&c| c != 0) {
        return None;
    }
    Some((&b[..nul], &b[end..]))
}

/// Size in bytes of one argument of type `t` at the front of `rest`, if it fits.
pub(super) fn arg_size(t: u8, rest: &[u8]) -> Option<usize> {
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
        off += match t {
            // The common fixed-size tags without slicing (checked against the length below).
            b'i' | b'f' => 4,
            _ => arg_size(t, args.get(off..)?)?,
        };
    }
    (off == args.len()).then_some(OscMessage {
        address,
        type_tags,
        args,
    })
}

pub(super) fn be_f32(b: &[u8], off: usize) -> f32 {
    match b.get(off..off.wrapping_add(4)) {
        Some(x) => f32::from_be_bytes([x[0], x[1], x[2], x[3]]),
        None => f32::NAN,
    }
}
