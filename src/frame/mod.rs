//! Slab buffers: preallocated frames that move by ownership through the SPSC rings.
//!
//! A [`Frame`] is one Open Ephys block (all channels at one `sample_num`). Its sample memory
//! is allocated once, at start-up, with room for `max_channels × max_block_samples` floats;
//! rows are indexed by the OE `channel_num` with a stride of the block's `num_samples`, so the
//! memory a block touches is `(highest channel + 1) × num_samples` floats. Frames travel as
//! `Arc<Frame>` (a pointer move, no allocation): free list → assembler (the only holder, so
//! it may write through `Arc::get_mut`) → one clone per shard ring → shards → return rings →
//! the receiver, which puts a frame back on the free list once its own handle is the last.
//!
//! The sample memory of a frame is an anonymous private mapping on Unix ([`SlabMem`]): the
//! kernel hands out zero pages and makes them resident only when a block first writes them.
//! So the pool reserves *address space* for the configured caps, while resident memory
//! follows the blocks really held (a 256-channel, 696-sample block touches 0.7 MiB of a
//! frame). One of the few files with `unsafe` code (README, "Development").
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::time::Instant;

/// Zero-initialised `f32` memory, made resident page by page as it is written.
pub struct SlabMem {
    ptr: NonNull<f32>,
    len: usize,
    mapped: bool,
}

// SAFETY: SlabMem owns its memory exclusively (like a Box<[f32]>); moving it to another
// thread moves that ownership.
unsafe impl Send for SlabMem {}
// SAFETY: shared references only give `&[f32]`, which is Sync.
unsafe impl Sync for SlabMem {}

impl SlabMem {
    /// `len` zeroed floats (an anonymous mapping on Unix, the heap elsewhere or if mapping fails).
    pub fn zeroed(len: usize) -> SlabMem {
        #[cfg(unix)]
        if let Some(bytes) = len
            .checked_mul(std::mem::size_of::<f32>())
            .filter(|_| len > 0)
        {
            // SAFETY: a fresh private anonymous mapping; no existing memory is affected. The
            // result is checked against MAP_FAILED before use.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                if let Some(ptr) = NonNull::new(p.cast::<f32>()) {
                    return SlabMem {
                        ptr,
                        len,
                        mapped: true,
                    };
                }
            }
        }
        let b: Box<[f32]> = vec![0.0f32; len].into_boxed_slice();
        let len = b.len();
        // Box::into_raw never returns null.
        let ptr = NonNull::new(Box::into_raw(b).cast::<f32>()).unwrap_or(NonNull::dangling());
        SlabMem {
            ptr,
            len,
            mapped: false,
        }
    }
    /// The floats.
    #[inline]
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: ptr points to `len` initialised (zeroed or written) f32s owned by self,
        // alive until Drop; the shared borrow of self prevents concurrent mutation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    /// The floats, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in as_slice; the exclusive borrow of self makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SlabMem {
    fn drop(&mut self) {
        if self.mapped {
            #[cfg(unix)]
            // SAFETY: ptr/len describe exactly the mapping created in `zeroed`, unmapped once.
            unsafe {
                libc::munmap(
                    self.ptr.as_ptr().cast(),
                    self.len * std::mem::size_of::<f32>(),
                );
            }
        } else {
            // SAFETY: ptr/len come from Box::into_raw of a Box<[f32]> of this length.
            drop(unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.ptr.as_ptr(),
                    self.len,
                ))
            });
        }
    }
}

impl std::fmt::Debug for SlabMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlabMem({} floats, mapped: {})", self.len, self.mapped)
    }
}

/// Fixed-capacity set of channel numbers, kept as a bitmap plus an ascending list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSet {
    bits: Vec<u64>,
    list: Vec<u32>,
}

impl ChannelSet {
    /// An empty set able to hold channels `0..max_channels` without allocating.
    pub fn with_capacity(max_channels: usize) -> Self {
        ChannelSet {
            bits: vec![0; max_channels.div_ceil(64)],
            list: Vec::with_capacity(max_channels),
        }
    }
    /// Largest channel number + 1 this set can hold.
    pub fn capacity(&self) -> usize {
        self.bits.len() * 64
    }
    /// Membership test.
    #[inline]
    pub fn contains(&self, ch: u32) -> bool {
        let (w, b) = ((ch / 64) as usize, ch % 64);
        w < self.bits.len() && self.bits[w] & (1 << b) != 0
    }
    /// Adds `ch` (must be below the capacity); returns false if it was already there.
    /// The list stays ascending (insertion is O(n) only for out-of-order arrivals).
    #[inline]
    pub fn insert(&mut self, ch: u32) -> bool {
        let (w, b) = ((ch / 64) as usize, ch % 64);
        debug_assert!(w < self.bits.len());
        if self.bits[w] & (1 << b) != 0 {
            return false;
        }
        self.bits[w] |= 1 << b;
        match self.list.last() {
            Some(&last) if last > ch => {
                let pos = self.list.partition_point(|&c| c < ch);
                self.list.insert(pos, ch);
            }
            _ => self.list.push(ch),
        }
        true
    }
    /// Removes everything (keeps the capacity).
    pub fn clear(&mut self) {
        for &c in &self.list {
            self.bits[(c / 64) as usize] = 0;
        }
        self.list.clear();
    }
    /// Makes `self` equal to `other` without allocating (same capacity).
    pub fn copy_from(&mut self, other: &ChannelSet) {
        self.clear();
        for &c in &other.list {
            self.bits[(c / 64) as usize] |= 1 << (c % 64);
        }
        self.list.extend_from_slice(&other.list);
    }
    /// Ascending channel numbers.
    pub fn as_slice(&self) -> &[u32] {
        &self.list
    }
    /// Number of channels.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// True when every channel of `other` is in `self`.
    pub fn is_superset_of(&self, other: &ChannelSet) -> bool {
        other.list.iter().all(|&c| self.contains(c))
    }
}

/// Why the downsampling/batching state must not continue from the previous frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discontinuity {
    /// This frame does not follow the previous emitted frame sample-for-sample (a dropped or
    /// incomplete block, an upstream gap, a File Reader loop, a restart or a stream change).
    pub gap: bool,
    /// The channel set (or stream) differs from the previous frame's.
    pub layout: bool,
}

/// What an [`EventRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    /// A TTL line change.
    #[default]
    Ttl,
    /// A spike.
    Spike,
}

/// A TTL event or spike that arrived before the frame's data (the plugin sends a block's
/// events first). Strings and waveforms live in the frame's `event_text` / `waveforms`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EventRecord {
    /// TTL or spike.
    pub kind: EventKind,
    /// Sample index (TTL: of the change; spike: of the peak).
    pub sample_num: i64,
    /// TTL line.
    pub line: u8,
    /// TTL state (1 on, 0 off).
    pub state: u8,
    /// TTL word after the change.
    pub word: u64,
    /// Spike sorted unit id.
    pub sorted_id: i32,
    /// Spike waveform channels.
    pub num_channels: u16,
    /// Spike waveform samples per channel.
    pub num_samples: u16,
    /// Offset of the waveform in `waveforms` (`num_channels · num_samples` floats, or none
    /// when `wave_len` is 0).
    pub wave_off: u32,
    /// Floats of the waveform stored.
    pub wave_len: u32,
    /// Offset of the electrode name in `event_text`.
    pub name_off: u32,
    /// Length of the electrode name.
    pub name_len: u32,
}

/// Capacity of a frame's event list.
pub const MAX_EVENTS: usize = 256;
/// Capacity of a frame's event text (electrode names).
pub const MAX_EVENT_TEXT: usize = 4 * 1024;
/// Capacity of a frame's spike waveform store (floats).
pub const MAX_WAVEFORM_FLOATS: usize = 4 * 1024;

/// Events received since the last frame, waiting to ride on the next one.
#[derive(Debug)]
pub struct EventBuffer {
    /// Records.
    pub events: Vec<EventRecord>,
    /// Electrode names.
    pub text: Vec<u8>,
    /// Spike waveforms.
    pub waveforms: Vec<f32>,
    /// Events dropped because a capacity was reached.
    pub dropped: u64,
}

impl EventBuffer {
    /// Empty, with the fixed capacities.
    pub fn new() -> Self {
        EventBuffer {
            events: Vec::with_capacity(MAX_EVENTS),
            text: Vec::with_capacity(MAX_EVENT_TEXT),
            waveforms: Vec::with_capacity(MAX_WAVEFORM_FLOATS),
            dropped: 0,
        }
    }
    /// Removes everything (keeps capacity).
    pub fn clear(&mut self) {
        self.events.clear();
        self.text.clear();
        self.waveforms.clear();
    }
    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
    /// Adds a TTL event; false (counted) when full.
    pub fn push_ttl(&mut self, sample_num: i64, line: u8, state: u8, word: u64) -> bool {
        if self.events.len() == self.events.capacity() {
            self.dropped += 1;
            return false;
        }
        self.events.push(EventRecord {
            kind: EventKind::Ttl,
            sample_num,
            line,
            state,
            word,
            ..Default::default()
        });
        true
    }
    /// Adds a spike; `waveform_le` is the payload (little-endian float32), kept only if it
    /// fits. False (counted) when the event list or name store is full.
    pub fn push_spike(
        &mut self,
        sample_num: i64,
        electrode: &str,
        sorted_id: i64,
        num_channels: usize,
        num_samples: usize,
        waveform_le: &[u8],
    ) -> bool {
        if self.events.len() == self.events.capacity()
            || self.text.len() + electrode.len() > self.text.capacity()
        {
            self.dropped += 1;
            return false;
        }
        let name_off = self.text.len() as u32;
        self.text.extend_from_slice(electrode.as_bytes());
        let nf = waveform_le.len() / 4;
        let wave_off = self.waveforms.len() as u32;
        let wave_len = if self.waveforms.len() + nf <= self.waveforms.capacity() {
            self.waveforms.extend(
                waveform_le
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            nf as u32
        } else {
            0
        };
        self.events.push(EventRecord {
            kind: EventKind::Spike,
            sample_num,
            sorted_id: sorted_id.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            num_channels: num_channels.min(u16::MAX as usize) as u16,
            num_samples: num_samples.min(u16::MAX as usize) as u16,
            wave_off,
            wave_len,
            name_off,
            name_len: electrode.len() as u32,
            ..Default::default()
        });
        true
    }
    /// Moves everything into `f` (whose own lists are replaced) and clears `self`.
    pub fn move_into(&mut self, f: &mut Frame) {
        f.events.clear();
        f.event_text.clear();
        f.waveforms.clear();
        f.events.extend_from_slice(&self.events);
        f.event_text.extend_from_slice(&self.text);
        f.waveforms.extend_from_slice(&self.waveforms);
        self.clear();
    }
}

impl Default for EventBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// One assembled block (shared read-only by the shards once emitted).
#[derive(Debug)]
pub struct Frame {
    /// TTL events and spikes that arrived before this block's data (or, in an events-only
    /// frame with `num_samples == 0`, while no block was coming).
    pub events: Vec<EventRecord>,
    /// Electrode names of `events`.
    pub event_text: Vec<u8>,
    /// Spike waveforms of `events`.
    pub waveforms: Vec<f32>,
    /// Receiver-assigned sequence number of emitted frames (starts at 1).
    pub seq: u64,
    /// First sample index of the block.
    pub sample_num: i64,
    /// Samples per channel.
    pub num_samples: usize,
    /// Stream sample rate in Hz.
    pub sample_rate: f64,
    /// Ascending OE channel numbers present in this frame (the current channel set).
    pub channels: Vec<u32>,
    /// Generation of the channel set; changes whenever the set or stream changes.
    pub layout_generation: u32,
    /// Continuity with the previous frame.
    pub discontinuity: Discontinuity,
    /// When the block's last channel message arrived (bridge-added latency starts here).
    pub arrival: Instant,
    /// Header `timestamp` (sender wall clock, ms) of the block's last message.
    pub header_timestamp_ms: Option<i64>,
    data: SlabMem,
}

impl Frame {
    /// A frame whose memory holds `max_channels × max_block_samples` floats.
    pub fn new(max_channels: usize, max_block_samples: usize) -> Frame {
        Frame {
            events: Vec::with_capacity(MAX_EVENTS),
            event_text: Vec::with_capacity(MAX_EVENT_TEXT),
            waveforms: Vec::with_capacity(MAX_WAVEFORM_FLOATS),
            seq: 0,
            sample_num: 0,
            num_samples: 0,
            sample_rate: 0.0,
            channels: Vec::with_capacity(max_channels),
            layout_generation: 0,
            discontinuity: Discontinuity::default(),
            arrival: Instant::now(),
            header_timestamp_ms: None,
            data: SlabMem::zeroed(max_channels * max_block_samples),
        }
    }
    /// Capacity in floats.
    pub fn capacity(&self) -> usize {
        self.data.len
    }
    /// Samples of channel `ch` (`num_samples` floats).
    #[inline]
    pub fn row(&self, ch: u32) -> &[f32] {
        let s = self.num_samples;
        let start = ch as usize * s;
        &self.data.as_slice()[start..start + s]
    }
    /// Mutable row of channel `ch` for a block of `num_samples` samples.
    #[inline]
    pub fn row_mut(&mut self, ch: u32, num_samples: usize) -> &mut [f32] {
        let start = ch as usize * num_samples;
        &mut self.data.as_mut_slice()[start..start + num_samples]
    }
    /// Asks the CPU to start loading the cache line that holds sample `j` of channel `ch`, so
    /// that a later read finds it near (a hint: values and behaviour are unchanged; nothing
    /// happens off x86-64 or out of bounds). The encoder reads a frame across all its channels
    /// at once, right after the receiver wrote it on another core, and would otherwise wait for
    /// one cache miss after another.
    #[inline(always)]
    pub fn prefetch(&self, ch: u32, j: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(v) = self.data.as_slice().get(ch as usize * self.num_samples + j) {
            // SAFETY: `_mm_prefetch` is only a cache hint: it reads nothing the program sees
            // and cannot fault, and the address is a valid element of this frame's memory
            // anyway. SSE, which it needs, is part of the x86-64 baseline.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    (v as *const f32).cast(),
                )
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (ch, j);
    }
    /// Sample `j` of channel `ch`.
    #[inline]
    pub fn sample(&self, ch: u32, j: usize) -> f32 {
        self.data.as_slice()[ch as usize * self.num_samples + j]
    }
}

/// Bytes of sample memory one frame reserves.
pub fn frame_bytes(max_channels: usize, max_block_samples: usize) -> usize {
    max_channels * max_block_samples * std::mem::size_of::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_set_keeps_ascending_order() {
        let mut s = ChannelSet::with_capacity(130);
        assert!(s.insert(5));
        assert!(s.insert(0));
        assert!(s.insert(129));
        assert!(s.insert(2));
        assert!(!s.insert(5));
        assert_eq!(s.as_slice(), &[0, 2, 5, 129]);
        assert!(s.contains(129) && !s.contains(128) && !s.contains(100_000));
        let mut t = ChannelSet::with_capacity(130);
        t.copy_from(&s);
        assert_eq!(t, s);
        t.clear();
        assert!(t.is_empty() && !t.contains(5));
        assert!(s.is_superset_of(&t));
        t.insert(7);
        assert!(!s.is_superset_of(&t));
    }

    #[test]
    fn frame_rows_use_block_stride() {
        let mut f = Frame::new(4, 8);
        f.num_samples = 3;
        f.row_mut(2, 3).copy_from_slice(&[1.0, 2.0, 3.0]);
        assert_eq!(f.row(2), &[1.0, 2.0, 3.0]);
        assert_eq!(f.sample(2, 1), 2.0);
        assert_eq!(f.capacity(), 32);
    }

    #[test]
    fn slab_memory_is_zeroed_writable_and_freed() {
        for len in [0, 1, 1000, 1 << 20] {
            let mut m = SlabMem::zeroed(len);
            assert!(m.as_slice().iter().all(|&v| v == 0.0));
            if len > 0 {
                m.as_mut_slice()[len - 1] = 2.5;
                assert_eq!(m.as_slice()[len - 1], 2.5);
            }
        }
    }
}
