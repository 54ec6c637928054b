//! `--record FILE`: every ZeroMQ message the receiver takes, written to a zmqcap file (the
//! format of the real-GUI captures; `oe-simulator --replay` plays it back) by a writer thread,
//! so the receiver never waits on the disk.
//!
//! The receiver copies each frame into a byte ring (rtrb, sized at start-up) as it receives it:
//! `START t_ns`, then `FRAME len bytes…` per frame, then `END`. When a frame does not fit, the
//! message is cut off with `ABORT` (room for it is always kept) and counted as not recorded; the
//! writer drops what it had of that message. Nothing allocates or blocks on the receiver's side;
//! the writer thread (`zmq_rec`) owns the file and a reusable message buffer.

use rtrb::{Consumer, Producer, RingBuffer};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const START: u8 = 1;
const FRAME: u8 = 2;
const END: u8 = 3;
const ABORT: u8 = 4;
/// Bytes kept free for an ABORT marker.
const RESERVE: usize = 1;

/// Counts shared by the receiver (producer) and the writer.
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Messages written to the file (by the writer).
    pub written: AtomicU64,
    /// Messages not recorded (by the receiver): the ring was full, or a frame could not be
    /// received whole.
    pub dropped: AtomicU64,
    /// Messages lost to a write error (by the writer; the first error is logged).
    pub failed: AtomicU64,
}

/// The receiver's end: copies frames into the ring.
pub struct RecordTap {
    ring: Producer<u8>,
    stats: Arc<RecordStats>,
    epoch: Instant,
    /// The current message is being recorded (false after an abort, until the next start).
    open: bool,
}

impl std::fmt::Debug for RecordTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordTap")
            .field("open", &self.open)
            .finish()
    }
}

impl RecordTap {
    fn push(&mut self, bytes: &[u8]) -> bool {
        if self.ring.slots() < bytes.len() + RESERVE {
            return false;
        }
        let Ok(mut chunk) = self.ring.write_chunk(bytes.len()) else {
            return false;
        };
        let (x, y) = chunk.as_mut_slices();
        let n = x.len();
        x.copy_from_slice(&bytes[..n]);
        y.copy_from_slice(&bytes[n..]);
        chunk.commit_all();
        true
    }

    fn abort(&mut self) {
        if self.open {
            // RESERVE guarantees the room.
            let _ = self.ring.push(ABORT);
            self.open = false;
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The current message cannot be recorded faithfully (a frame longer than the receiver's
    /// buffer, or a failed receive): it is left out and counted as not recorded.
    pub fn cut(&mut self) {
        self.abort();
    }

    /// A new message begins (arrival now); a message still open is complete.
    pub fn start(&mut self) {
        self.end();
        let t = self.epoch.elapsed().as_nanos() as u64;
        let mut b = [0u8; 9];
        b[0] = START;
        b[1..].copy_from_slice(&t.to_le_bytes());
        self.open = self.push(&b);
        if !self.open {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One frame of the current message.
    pub fn frame(&mut self, bytes: &[u8]) {
        if !self.open {
            return;
        }
        let mut h = [0u8; 5];
        h[0] = FRAME;
        h[1..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        if self.ring.slots() < h.len() + bytes.len() + 1 + RESERVE {
            self.abort();
            return;
        }
        self.push(&h);
        self.push(bytes);
    }

    /// The current message (if one is open) is complete.
    pub fn end(&mut self) {
        if !self.open {
            return;
        }
        if self.push(&[END]) {
            self.open = false;
        } else {
            self.abort();
        }
    }
}

/// The file for source `name` when there are `n_sources`: `path` itself for one source, else
/// `.<name>` inserted before the `.zmqcap` / `.zmqcap.gz` extension (or appended).
pub fn source_path(path: &Path, name: &str, n_sources: usize) -> std::path::PathBuf {
    if n_sources <= 1 {
        return path.to_path_buf();
    }
    let s = path.to_string_lossy();
    for ext in [".zmqcap.gz", ".zmqcap", ".gz"] {
        if let Some(stem) = s.strip_suffix(ext) {
            return format!("{stem}.{name}{ext}").into();
        }
    }
    format!("{s}.{name}").into()
}

/// The writer thread's handle.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<u64>>>,
    stats: Arc<RecordStats>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish()
    }
}

/// Opens `path` (gzip when it ends in `.gz`) and starts the writer; returns the receiver's tap.
pub fn start(path: &Path, ring_bytes: usize) -> io::Result<(RecordTap, Recorder)> {
    let mut writer = oe_testkit::zmqcap::create(path)?;
    let (mut producer, mut consumer) = RingBuffer::<u8>::new(ring_bytes.max(1 << 16));
    // Touch every page of the ring now, so the receiver never page-faults on it later.
    if let Ok(mut w) = producer.write_chunk(producer.slots()) {
        let (a, b) = w.as_mut_slices();
        a.fill(0);
        b.fill(0);
        w.commit_all();
    }
    if let Ok(r) = consumer.read_chunk(consumer.slots()) {
        r.commit_all();
    }
    let stats = Arc::new(RecordStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let thread = {
        let (stats, stop) = (stats.clone(), stop.clone());
        std::thread::Builder::new()
            .name("zmq_rec".into())
            .spawn(move || -> io::Result<u64> {
                let mut msg = MessageBuf::default();
                let mut first_error: Option<io::Error> = None;
                loop {
                    let stopping = stop.load(Ordering::Acquire);
                    let got = drain(&mut consumer, &mut msg, |t, frames| {
                        if first_error.is_some() {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        match writer.write_record(t, frames) {
                            Ok(()) => {
                                stats.written.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                eprintln!("record: write failed, recording stops: {e}");
                                stats.failed.fetch_add(1, Ordering::Relaxed);
                                first_error = Some(e);
                            }
                        }
                    });
                    if stopping && got == 0 {
                        break;
                    }
                    if got == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                let n = writer.records();
                writer.finish()?;
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(n),
                }
            })?
    };
    Ok((
        RecordTap {
            ring: producer,
            stats: stats.clone(),
            epoch,
            open: false,
        },
        Recorder {
            stop,
            thread: Some(thread),
            stats,
        },
    ))
}

impl Recorder {
    /// The counts so far.
    pub fn stats(&self) -> &Arc<RecordStats> {
        &self.stats
    }

    /// Writes what is left in the ring, closes the file; returns the messages written.
    pub fn finish(mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the record writer panicked")),
            None => Ok(0),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The message being reassembled by the writer.
#[derive(Default)]
struct MessageBuf {
    t_ns: u64,
    /// Bytes of all frames, and each frame's end offset.
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Parse state across ring reads: what the next bytes are.
    state: State,
    /// Length of the frame being read, and bytes of a partial header.
    head: Vec<u8>,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Tag,
    Start,
    FrameLen,
    FrameBytes(usize),
}

/// Consumes what is in the ring; calls `out` for every complete message. Returns bytes read.
fn drain(c: &mut Consumer<u8>, m: &mut MessageBuf, mut out: impl FnMut(u64, &[&[u8]])) -> usize {
    let n = c.slots();
    if n == 0 {
        return 0;
    }
    let Ok(chunk) = c.read_chunk(n) else {
        return 0;
    };
    let (a, b) = chunk.as_slices();
    m.feed(a, &mut out);
    m.feed(b, &mut out);
    chunk.commit_all();
    n
}

impl MessageBuf {
    /// Parses `data` (a continuation of the ring's byte stream).
    fn feed(&mut self, mut data: &[u8], out: &mut impl FnMut(u64, &[&[u8]])) {
        while let Some((&byte, rest)) = data.split_first() {
            match self.state {
                State::FrameBytes(left) => {
                    // Bulk copy of a frame's bytes.
                    let k = left.min(data.len());
                    self.bytes.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    self.state = if k == left {
                        self.ends.push(self.bytes.len());
                        State::Tag
                    } else {
                        State::FrameBytes(left - k)
                    };
                    continue;
                }
                State::Tag => match byte {
                    START => {
                        self.head.clear();
                        self.state = State::Start;
                    }
                    FRAME => {
                        self.head.clear();
                        self.state = State::FrameLen;
                    }
                    END => {
                        let mut frames: Vec<&[u8]> = Vec::with_capacity(self.ends.len());
                        let mut s = 0;
                        for &e in &self.ends {
                            frames.push(&self.bytes[s..e]);
                            s = e;
                        }
                        out(self.t_ns, &frames);
                        self.bytes.clear();
                        self.ends.clear();
                    }
                    _ => {
                        // ABORT: forget the partial message.
                        self.bytes.clear();
                        self.ends.clear();
                    }
                },
                State::Start => {
                    self.head.push(byte);
                    if self.head.len() == 8 {
                        let mut t = [0u8; 8];
                        t.copy_from_slice(&self.head);
                        self.t_ns = u64::from_le_bytes(t);
                        self.bytes.clear();
                        self.ends.clear();
                        self.state = State::Tag;
                    }
                }
                State::FrameLen => {
                    self.head.push(byte);
                    if self.head.len() == 4 {
                        let mut l = [0u8; 4];
                        l.copy_from_slice(&self.head);
                        let len = u32::from_le_bytes(l) as usize;
                        self.state = if len == 0 {
                            self.ends.push(self.bytes.len());
                            State::Tag
                        } else {
                            State::FrameBytes(len)
                        };
                    }
                }
            }
            data = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("z2o-rec-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    #[test]
    fn one_file_per_source() {
        let p = Path::new("/tmp/x.zmqcap.gz");
        assert_eq!(source_path(p, "a", 1), p);
        assert_eq!(source_path(p, "a", 2), Path::new("/tmp/x.a.zmqcap.gz"));
        assert_eq!(source_path(Path::new("cap"), "b", 2), Path::new("cap.b"));
    }

    #[test]
    fn messages_round_trip_through_the_ring_and_the_file() {
        let p = tmp("rt.zmqcap.gz");
        let (mut tap, rec) = start(&p, 1 << 16).unwrap();
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        for i in 0..200u32 {
            tap.start();
            tap.frame(b"DATA\0");
            tap.frame(format!("{{\"n\": {i}}}").as_bytes());
            tap.frame(&payload[..(i as usize * 37) % payload.len()]);
            tap.frame(&[]);
            tap.end();
            // Give the writer time now and then, as a real stream would.
            if i % 4 == 0 {
                while tap.ring.slots() < (1 << 16) - 16 {
                    std::thread::yield_now();
                }
            }
        }
        let stats = rec.stats().clone();
        assert_eq!(rec.finish().unwrap(), 200);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
        let recs = oe_testkit::zmqcap::read_all(&p).unwrap();
        assert_eq!(recs.len(), 200);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.frames.len(), 4);
            assert_eq!(r.frames[0], b"DATA\0");
            assert_eq!(r.frames[1], format!("{{\"n\": {i}}}").as_bytes());
            assert_eq!(r.frames[2], &payload[..(i * 37) % payload.len()]);
            assert!(r.frames[3].is_empty());
        }
        assert!(recs.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_full_ring_drops_whole_messages_and_counts_them() {
        // The tap alone (no writer thread draining concurrently): deterministic.
        let (producer, mut consumer) = RingBuffer::<u8>::new(1 << 16);
        let stats = Arc::new(RecordStats::default());
        let mut tap = RecordTap {
            ring: producer,
            stats: stats.clone(),
            epoch: Instant::now(),
            open: false,
        };
        let big = vec![7u8; 40_000];
        for _ in 0..3 {
            tap.start();
            tap.frame(b"DATA\0");
            tap.frame(&big);
            tap.end();
        }
        // A message cut off mid-way by a frame that does not fit, then one that fits.
        tap.start();
        tap.frame(b"EVENT\0");
        tap.end();
        let mut m = MessageBuf::default();
        let mut got = Vec::new();
        drain(&mut consumer, &mut m, |_, f| {
            got.push(f.iter().map(|x| x.to_vec()).collect::<Vec<_>>())
        });
        // The first big message fits; the next two are cut off (ABORT) and counted; the small
        // one after them is recorded.
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], vec![b"DATA\0".to_vec(), big.clone()]);
        assert_eq!(got[1], vec![b"EVENT\0".to_vec()]);
        // Once drained, big messages fit again.
        tap.start();
        tap.frame(&big);
        tap.end();
        drain(&mut consumer, &mut m, |_, f| {
            got.push(f.iter().map(|x| x.to_vec()).collect())
        });
        assert_eq!(got.len(), 3);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
    }
}
