//! The current layout (stream name, channels, rate, OE channel names), handed from the
//! receiver to the shards and the controller without a lock and without allocation.
//!
//! [`LayoutBoard`] is a seqlock over atomics, sized at start-up for `max_channels`: the one
//! writer (the receiver, on a channel-set change only) bumps the sequence to odd, stores
//! the fields, bumps it to even; a reader copies the fields and keeps the copy only if the
//! sequence was even and unchanged around it (else it retries, a bounded number of times).
//! Names are cut to [`NAME_CAP`] bytes, the stream name to [`STREAM_CAP`], at a character
//! boundary. A shard reads into its preallocated [`LayoutCopy`] when a frame with a new
//! layout generation arrives and builds its per-channel addresses from it
//! ([`super::OutputPipeline`]); the controller takes an allocating [`LayoutInfo`] snapshot.

use super::address::AddressVars;
use super::{Mode, OutputPipeline, MAX_ADDRESS, NAN_COL};
use crate::frame::Frame;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Longest OE channel name kept (bytes).
pub const NAME_CAP: usize = 64;
/// Longest stream name kept (bytes).
pub const STREAM_CAP: usize = 256;
/// Reads retried at most this often while the writer keeps publishing.
const READ_TRIES: usize = 1000;

/// `s` cut to at most `cap` bytes at a character boundary.
pub fn cut(s: &str, cap: usize) -> &str {
    let mut n = s.len().min(cap);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// The layout as published by the receiver (one writer, any number of readers).
#[derive(Debug)]
pub struct LayoutBoard {
    seq: AtomicU64,
    generation: AtomicU32,
    rate_bits: AtomicU64,
    count: AtomicU32,
    channels: Box<[AtomicU32]>,
    stream_len: AtomicU32,
    stream: Box<[AtomicU8]>,
    name_len: Box<[AtomicU8]>,
    names: Box<[AtomicU8]>,
}

fn atomics<T: Default>(n: usize) -> Box<[T]> {
    (0..n).map(|_| T::default()).collect()
}

impl LayoutBoard {
    /// A board for channel numbers below `max_channels` (nothing published yet).
    pub fn new(max_channels: usize) -> Self {
        LayoutBoard {
            seq: AtomicU64::new(0),
            generation: AtomicU32::new(0),
            rate_bits: AtomicU64::new(0),
            count: AtomicU32::new(0),
            channels: atomics(max_channels),
            stream_len: AtomicU32::new(0),
            stream: atomics(STREAM_CAP),
            name_len: atomics(max_channels),
            names: atomics(max_channels * NAME_CAP),
        }
    }

    /// Channel capacity.
    pub fn max_channels(&self) -> usize {
        self.channels.len()
    }

    /// Publishes a layout. **One writer only** (the receiver thread). No allocation, no
    /// lock. Channels at or above the capacity are left out.
    pub fn publish<'a>(
        &self,
        generation: u32,
        rate: f64,
        channels: &[u32],
        stream: &str,
        name: impl Fn(u32) -> &'a str,
    ) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.generation.store(generation, Ordering::Relaxed);
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        let cap = self.channels.len();
        let mut n = 0;
        for &c in channels.iter().filter(|&&c| (c as usize) < cap) {
            self.channels[n].store(c, Ordering::Relaxed);
            n += 1;
            let text = cut(name(c), NAME_CAP);
            let base = c as usize * NAME_CAP;
            for (i, b) in text.bytes().enumerate() {
                self.names[base + i].store(b, Ordering::Relaxed);
            }
            self.name_len[c as usize].store(text.len() as u8, Ordering::Relaxed);
        }
        self.count.store(n as u32, Ordering::Relaxed);
        let st = cut(stream, STREAM_CAP);
        for (i, b) in st.bytes().enumerate() {
            self.stream[i].store(b, Ordering::Relaxed);
        }
        self.stream_len.store(st.len() as u32, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Copies the published layout into `out` (no allocation). False when nothing was
    /// published yet, or the writer kept publishing during every try.
    pub fn read_into(&self, out: &mut LayoutCopy) -> bool {
        for _ in 0..READ_TRIES {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 == 0 {
                return false;
            }
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            out.generation = self.generation.load(Ordering::Relaxed);
            out.rate = f64::from_bits(self.rate_bits.load(Ordering::Relaxed));
            let n = (self.count.load(Ordering::Relaxed) as usize)
                .min(self.channels.len())
                .min(out.channels.capacity());
            out.channels.clear();
            for a in &self.channels[..n] {
                out.channels.push(a.load(Ordering::Relaxed));
            }
            if out.with_names {
                for &c in &out.channels {
                    let c = c as usize;
                    if c >= out.name_len.len() {
                        continue;
                    }
                    let len = (self.name_len[c].load(Ordering::Relaxed) as usize).min(NAME_CAP);
                    let base = c * NAME_CAP;
                    for i in 0..len {
                        out.names[base + i] = self.names[base + i].load(Ordering::Relaxed);
                    }
                    out.name_len[c] = len as u8;
                }
            }
            let sl = (self.stream_len.load(Ordering::Relaxed) as usize).min(STREAM_CAP);
            for i in 0..sl {
                out.stream_bytes[i] = self.stream[i].load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                out.stream.clear();
                out.stream
                    .push_str(std::str::from_utf8(&out.stream_bytes[..sl]).unwrap_or(""));
                return true;
            }
        }
        false
    }

    /// An owned copy of the current layout (allocates: for the controller, never a hot
    /// thread). `None` before the first layout.
    pub fn snapshot(&self) -> Option<LayoutInfo> {
        let mut c = LayoutCopy::new(self.max_channels(), true);
        if !self.read_into(&mut c) {
            return None;
        }
        Some(LayoutInfo {
            generation: c.generation,
            stream: c.stream.clone(),
            rate: c.rate,
            names: c
                .channels
                .iter()
                .filter_map(|&ch| c.name(ch).map(|n| (ch, n.to_string())))
                .collect(),
            channels: c.channels,
        })
    }
}

/// A reader's preallocated copy of the board.
#[derive(Debug)]
pub struct LayoutCopy {
    /// Layout generation.
    pub generation: u32,
    /// Sample rate (Hz).
    pub rate: f64,
    /// Stream name.
    pub stream: String,
    /// Channels, ascending.
    pub channels: Vec<u32>,
    with_names: bool,
    stream_bytes: Box<[u8]>,
    name_len: Vec<u8>,
    names: Vec<u8>,
}

impl LayoutCopy {
    /// Buffers for `max_channels` channels; names are copied only `with_names`.
    pub fn new(max_channels: usize, with_names: bool) -> Self {
        let named = if with_names { max_channels } else { 0 };
        LayoutCopy {
            generation: 0,
            rate: 0.0,
            stream: String::with_capacity(STREAM_CAP),
            channels: Vec::with_capacity(max_channels),
            with_names,
            stream_bytes: vec![0; STREAM_CAP].into_boxed_slice(),
            name_len: vec![0; named],
            names: vec![0; named * NAME_CAP],
        }
    }

    /// The OE name of channel `ch` (`None` when unknown, empty, or names are not copied).
    pub fn name(&self, ch: u32) -> Option<&str> {
        let c = ch as usize;
        let len = *self.name_len.get(c)? as usize;
        if len == 0 {
            return None;
        }
        std::str::from_utf8(&self.names[c * NAME_CAP..c * NAME_CAP + len]).ok()
    }
}

/// Stream, channels, rate and OE channel names of the current layout (the controller's
/// owned snapshot: start-up/report text, dashboard).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayoutInfo {
    /// Layout generation these values belong to.
    pub generation: u32,
    /// Stream name.
    pub stream: String,
    /// Channels, ascending.
    pub channels: Vec<u32>,
    /// Sample rate (Hz).
    pub rate: f64,
    /// OE channel names by channel number (from `channel_name`, when the plugin sends it).
    pub names: Vec<(u32, String)>,
}

impl LayoutInfo {
    /// One line: `stream "X": N channels @ R Hz (names: CH1, CH2, …)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "stream \"{}\": {} channels @ {} Hz",
            self.stream,
            self.channels.len(),
            self.rate
        );
        if !self.names.is_empty() {
            let shown: Vec<&str> = self.names.iter().take(8).map(|(_, n)| n.as_str()).collect();
            s.push_str(&format!(
                " (names: {}{})",
                shown.join(", "),
                if self.names.len() > 8 { ", …" } else { "" }
            ));
        }
        s
    }
}

impl OutputPipeline {
    /// Takes the channel set of `f` (a new layout generation): columns, then, from the
    /// board, the stream name and (per-channel format) every channel's address. Writes only
    /// into buffers sized at construction.
    pub(super) fn set_layout(&mut self, f: &Frame) {
        self.generation = Some(f.layout_generation);
        self.cols.clear();
        if self.fmt.sparse {
            let present = |c: u32| f.channels.binary_search(&c).is_ok();
            let highest = match &self.fmt.selection {
                Some(sel) => sel.iter().copied().max(),
                None => f.channels.last().copied(),
            };
            if let Some(h) = highest {
                for c in 0..=h.min(self.fmt.max_channels as u32 - 1) {
                    let selected = self.fmt.selection.as_ref().is_none_or(|s| s.contains(&c));
                    self.cols
                        .push(if selected && present(c) { c } else { NAN_COL });
                }
            }
        } else {
            match &self.fmt.selection {
                Some(sel) => {
                    for &c in sel {
                        if f.channels.binary_search(&c).is_ok() {
                            self.cols.push(c);
                        }
                    }
                }
                None => self.cols.extend_from_slice(&f.channels),
            }
        }
        self.n = self.cols.len();
        self.stream.clear();
        // Names of another layout generation would be wrong here: fall back instead.
        let current = self
            .layout
            .as_ref()
            .is_some_and(|b| b.read_into(&mut self.layout_copy))
            && self.layout_copy.generation == f.layout_generation;
        if current {
            self.stream.push_str(&self.layout_copy.stream);
        }
        if self.fmt.mode != Mode::PerChannel {
            return;
        }
        self.chan_addrs.clear();
        self.chan_off.clear();
        // Template t's address of column i is at `t · n + i`.
        for tmpl in &self.address_templates {
            for (index, &ch) in self.cols.iter().enumerate() {
                let renamed = self
                    .fmt
                    .names
                    .iter()
                    .find(|(c, _)| *c == ch)
                    .map(|x| x.1.as_str());
                let oe = if current {
                    self.layout_copy.name(ch)
                } else {
                    None
                };
                let mut fallback = [0u8; 24];
                fallback[..2].copy_from_slice(b"CH");
                let mut digits = [0u8; 20];
                let d = super::osc::itoa(u64::from(ch) + 1, &mut digits);
                fallback[2..2 + d.len()].copy_from_slice(d);
                let fallback = std::str::from_utf8(&fallback[..2 + d.len()]).unwrap_or("CH");
                let vars = AddressVars {
                    base: &self.fmt.base_address,
                    stream: &self.stream,
                    name: renamed.or(oe).unwrap_or(fallback),
                    ch,
                    index: index as u32,
                };
                let mut buf = [0u8; MAX_ADDRESS];
                let mut len = tmpl.write_bounded(&vars, &mut buf);
                if len == 0 || buf[0] != b'/' {
                    // Validated at construction; only an odd name can get here.
                    buf[..3].copy_from_slice(b"/ch");
                    let d = super::osc::itoa(u64::from(ch), &mut digits);
                    buf[3..3 + d.len()].copy_from_slice(d);
                    len = 3 + d.len();
                }
                let off = self.chan_addrs.len();
                self.chan_addrs.extend_from_slice(&buf[..len]);
                self.chan_off.push((off as u32, len as u32));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn publish_and_read_back() {
        let b = LayoutBoard::new(8);
        let mut c = LayoutCopy::new(8, true);
        assert!(!b.read_into(&mut c), "nothing published yet");
        assert_eq!(b.snapshot(), None);
        let names = ["A1", "", "Ünïcode", "B4"];
        b.publish(3, 30000.0, &[0, 1, 2, 3, 9], "Rhythm Data", |ch| {
            names.get(ch as usize).copied().unwrap_or("x")
        });
        assert!(b.read_into(&mut c));
        assert_eq!((c.generation, c.rate), (3, 30000.0));
        assert_eq!(
            c.channels,
            vec![0, 1, 2, 3],
            "channel 9 is above the capacity"
        );
        assert_eq!(c.stream, "Rhythm Data");
        assert_eq!(c.name(0), Some("A1"));
        assert_eq!(c.name(1), None);
        assert_eq!(c.name(2), Some("Ünïcode"));
        let mut small = LayoutCopy::new(2, true);
        assert!(b.read_into(&mut small), "a smaller copy takes what fits");
        assert_eq!(
            (small.channels.len() <= 4, small.name(0)),
            (true, Some("A1"))
        );
        let info = b.snapshot().unwrap();
        assert_eq!(info.names.len(), 3);
        assert!(info
            .describe()
            .starts_with("stream \"Rhythm Data\": 4 channels @ 30000 Hz"));
    }

    #[test]
    fn long_names_are_cut_at_a_char_boundary() {
        let b = LayoutBoard::new(2);
        let long = "é".repeat(NAME_CAP);
        let stream = "s".repeat(STREAM_CAP + 10);
        b.publish(1, 1000.0, &[1], &stream, |_| &long);
        let info = b.snapshot().unwrap();
        assert_eq!(info.names[0].1, "é".repeat(NAME_CAP / 2));
        assert_eq!(info.stream.len(), STREAM_CAP);
    }

    #[test]
    fn readers_never_see_a_torn_layout() {
        // The writer alternates two layouts whose every field agrees with the generation; a
        // reader must only ever see one of them whole.
        let b = Arc::new(LayoutBoard::new(64));
        let w = b.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let writer = std::thread::spawn(move || {
            let chans: Vec<u32> = (0..64).collect();
            let mut g = 0u32;
            while !s2.load(Ordering::Relaxed) {
                g += 1;
                let name = if g.is_multiple_of(2) {
                    "even"
                } else {
                    "odd-name"
                };
                let n = if g.is_multiple_of(2) { 64 } else { 10 };
                w.publish(g, f64::from(g), &chans[..n], name, |_| name);
                std::thread::yield_now();
            }
        });
        let mut c = LayoutCopy::new(64, true);
        let mut seen = 0;
        while seen < 500 {
            if b.read_into(&mut c) {
                seen += 1;
                let even = c.generation.is_multiple_of(2);
                assert_eq!(c.rate, f64::from(c.generation));
                assert_eq!(c.channels.len(), if even { 64 } else { 10 });
                let want = if even { "even" } else { "odd-name" };
                assert_eq!(c.stream, want);
                for &ch in &c.channels {
                    assert_eq!(c.name(ch), Some(want));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }
}
