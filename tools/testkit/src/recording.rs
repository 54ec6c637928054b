//! Open Ephys **binary-format** recordings, played the way the GUI's File Reader feeding the ZMQ
//! Interface plugin would publish them.
//!
//! A recording folder holds `structure.oebin` (JSON) and, per continuous stream,
//! `continuous/<folder_name>/continuous.dat` (interleaved little-endian int16, one frame of
//! `num_channels` values per sample; value = int16 × the channel's `bit_volts`) with an optional
//! `sample_numbers.npy` (int64, one per sample). TTL events of a stream live in
//! `events/<event folder_name>/` (`…/TTL/`): `sample_numbers.npy` (int64), `states.npy` (int16:
//! `+line` on, `-line` off, lines counted from 1) and optionally `full_words.npy` (uint64).
//!
//! [`RecordingSource`] turns the first continuous stream into ZMQ Interface messages: GUI-sized
//! blocks (`int(1024 · rate / 44100)`, 696 at 30 kHz), the channel names from the file, each
//! block's TTL events before its data, `sample_num` = file index of the block's first sample
//! (going backwards when the File Reader loops; a block that straddles the end of the file holds
//! its last samples then its first ones, as the GUI's does), `message_num` from 1 and never
//! restarting while it plays. Headers are cut by the plugin's non-ASCII length bug, like the
//! real plugin's.

use crate::replay::MessageSource;
use crate::sim::{juce_data_header, juce_event_header, BlockSize, DATA_ENVELOPE, EVENT_ENVELOPE};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One TTL event of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlEvent {
    /// File index of the event (sample number minus the first sample number).
    pub index: i64,
    /// 0-based line.
    pub line: u8,
    /// 1 = on, 0 = off.
    pub state: u8,
    /// All lines after the change.
    pub word: u64,
}

/// A loaded recording (one continuous stream).
#[derive(Debug, Clone)]
pub struct Recording {
    /// Stream name (`stream_name`, or the folder name for old files).
    pub stream: String,
    /// Sample rate in Hz.
    pub sample_rate: f64,
    /// Channel names, in file order.
    pub channel_names: Vec<String>,
    /// Per-channel scale.
    pub bit_volts: Vec<f64>,
    /// Interleaved int16 samples (`samples × channels`).
    pub data: Vec<i16>,
    /// First sample number (`sample_numbers.npy[0]`, else 0).
    pub first_sample_number: i64,
    /// TTL events sorted by index.
    pub ttl: Vec<TtlEvent>,
    /// Processor id that created the events (the File Reader's node id, 100 if unknown).
    pub source_node: i64,
}

impl Recording {
    /// Samples per channel.
    pub fn samples(&self) -> usize {
        self.data.len() / self.channel_names.len().max(1)
    }
    /// Channels.
    pub fn channels(&self) -> usize {
        self.channel_names.len()
    }
    /// The float the GUI sends for channel `c` at file index `i`: int16 × bit_volts in float32.
    pub fn value(&self, c: usize, i: usize) -> f32 {
        f32::from(self.data[i * self.channels() + c]) * self.bit_volts[c] as f32
    }
}

fn err(p: &Path, what: impl std::fmt::Display) -> String {
    format!("{}: {what}", p.display())
}

/// A 1-D .npy array of integers, widened to i64 (u64 values above i64::MAX keep their bits).
pub fn read_npy_ints(path: &Path) -> Result<Vec<i64>, String> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    parse_npy_ints(&bytes).map_err(|e| err(path, e))
}

/// Parses .npy bytes (format v1, v2 or v3) holding a 1-D C-order integer array.
pub fn parse_npy_ints(b: &[u8]) -> Result<Vec<i64>, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (hlen, off): (usize, usize) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = off
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or("truncated .npy header")?;
    let h = std::str::from_utf8(&b[off..end]).map_err(|_| "the .npy header is not text")?;
    let field = |k: &str| -> Result<&str, String> {
        let at = h
            .find(&format!("'{k}'"))
            .ok_or(format!("the .npy header has no '{k}'"))?;
        let rest = h[at + k.len() + 2..].trim_start();
        Ok(rest.strip_prefix(':').unwrap_or(rest).trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("bad 'descr' in the .npy header")?;
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape = field("shape")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("bad 'shape' in the .npy header")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape {shape:?}"))
        })
        .collect::<Result<_, _>>()?;
    let n = match dims.as_slice() {
        [n] => *n,
        [n, 1] => *n,
        [] => 1,
        _ => return Err(format!("expected a 1-D array, shape is ({shape})")),
    };
    let (size, big) = match descr.as_bytes().first() {
        Some(b'<') | Some(b'|') | Some(b'=') => (&descr[1..], false),
        Some(b'>') => (&descr[1..], true),
        _ => (descr, false),
    };
    let width = match size {
        "i1" | "u1" | "b1" => 1,
        "i2" | "u2" => 2,
        "i4" | "u4" => 4,
        "i8" | "u8" => 8,
        _ => return Err(format!("unsupported dtype {descr:?} (integers only)")),
    };
    let data = &b[end..];
    let need = n.checked_mul(width).ok_or("array too large")?;
    if data.len() < need {
        return Err(format!(
            "truncated: {n} values of {width} bytes need {need} bytes, {} present",
            data.len()
        ));
    }
    let signed = size.starts_with('i');
    Ok(data[..need]
        .chunks_exact(width)
        .map(|c| {
            let mut v = [0u8; 8];
            if big {
                for (k, x) in c.iter().rev().enumerate() {
                    v[k] = *x;
                }
            } else {
                v[..width].copy_from_slice(c);
            }
            let u = u64::from_le_bytes(v);
            if signed && width < 8 && (u >> (width * 8 - 1)) & 1 == 1 {
                (u | (!0u64 << (width * 8))) as i64
            } else {
                u as i64
            }
        })
        .collect())
}

/// Writes a 1-D little-endian .npy array (format v1) of `dtype` (`"<i2"`, `"<i8"`, `"<u8"`…)
/// from raw little-endian `data` (for tests and tools that make recordings).
pub fn write_npy(path: &Path, dtype: &str, n: usize, data: &[u8]) -> std::io::Result<()> {
    let mut h = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': ({n},), }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out)
}

fn folder(v: &serde_json::Value) -> Option<&str> {
    v.get("folder_name")
        .and_then(|f| f.as_str())
        .map(|f| f.trim_end_matches('/'))
}

/// Loads the first continuous stream of the recording in `dir` (the folder holding
/// `structure.oebin`), with its TTL events. Every problem names the file and what is wrong.
pub fn load(dir: &Path) -> Result<Recording, String> {
    let oebin = dir.join("structure.oebin");
    let text =
        std::fs::read_to_string(&oebin).map_err(|e| err(&oebin, format!("cannot read: {e}")))?;
    let j: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(&oebin, format!("not valid JSON: {e}")))?;
    let cont = j
        .get("continuous")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
        .ok_or_else(|| err(&oebin, "no \"continuous\" stream"))?;
    let fname = folder(cont).ok_or_else(|| err(&oebin, "continuous[0] has no \"folder_name\""))?;
    let sample_rate = cont
        .get("sample_rate")
        .and_then(|r| r.as_f64())
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| err(&oebin, "continuous[0] has no valid \"sample_rate\""))?;
    let chans = cont
        .get("channels")
        .and_then(|c| c.as_array())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| err(&oebin, "continuous[0] has no \"channels\""))?;
    if let Some(n) = cont.get("num_channels").and_then(|n| n.as_u64()) {
        if n as usize != chans.len() {
            return Err(err(
                &oebin,
                format!("num_channels {n} but {} channel entries", chans.len()),
            ));
        }
    }
    let mut channel_names = Vec::new();
    let mut bit_volts = Vec::new();
    for (k, c) in chans.iter().enumerate() {
        channel_names.push(
            c.get("channel_name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| format!("CH{}", k + 1)),
        );
        bit_volts.push(
            c.get("bit_volts")
                .and_then(|b| b.as_f64())
                .filter(|b| b.is_finite())
                .ok_or_else(|| err(&oebin, format!("channel {k} has no valid \"bit_volts\"")))?,
        );
    }
    let stream = cont
        .get("stream_name")
        .and_then(|s| s.as_str())
        .unwrap_or(fname)
        .to_string();
    let source_node = cont
        .get("source_processor_id")
        .and_then(|s| s.as_i64())
        .unwrap_or(100);
    let cdir = dir.join("continuous").join(fname);
    let dat = cdir.join("continuous.dat");
    let raw = std::fs::read(&dat).map_err(|e| err(&dat, format!("cannot read: {e}")))?;
    let frame = 2 * chans.len();
    if raw.len() % frame != 0 {
        return Err(err(
            &dat,
            format!(
                "{} bytes is not a whole number of {}-channel int16 frames (truncated?)",
                raw.len(),
                chans.len()
            ),
        ));
    }
    if raw.is_empty() {
        return Err(err(&dat, "no samples"));
    }
    let data: Vec<i16> = raw
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let samples = data.len() / chans.len();
    let sn_path = cdir.join("sample_numbers.npy");
    let first_sample_number = if sn_path.exists() {
        let sn = read_npy_ints(&sn_path)?;
        if sn.len() != samples {
            return Err(err(
                &sn_path,
                format!("{} sample numbers for {samples} samples", sn.len()),
            ));
        }
        sn[0]
    } else {
        0
    };
    // TTL folders of this stream: from the oebin's "events", else the usual place.
    let mut ttl_dirs: Vec<PathBuf> = j
        .get("events")
        .and_then(|e| e.as_array())
        .map(|evs| {
            evs.iter()
                .filter_map(folder)
                .filter(|f| f.starts_with(fname) && f.contains("TTL"))
                .map(|f| dir.join("events").join(f))
                .collect()
        })
        .unwrap_or_default();
    if ttl_dirs.is_empty() {
        let d = dir.join("events").join(fname).join("TTL");
        if d.is_dir() {
            ttl_dirs.push(d);
        }
    }
    let mut ttl = Vec::new();
    for d in &ttl_dirs {
        let snp = d.join("sample_numbers.npy");
        let stp = d.join("states.npy");
        let sn = read_npy_ints(&snp)?;
        let st = read_npy_ints(&stp)?;
        if sn.len() != st.len() {
            return Err(err(
                &stp,
                format!("{} states for {} sample numbers", st.len(), sn.len()),
            ));
        }
        let fwp = d.join("full_words.npy");
        let fw = if fwp.exists() {
            let fw = read_npy_ints(&fwp)?;
            if fw.len() != sn.len() {
                return Err(err(
                    &fwp,
                    format!("{} words for {} sample numbers", fw.len(), sn.len()),
                ));
            }
            Some(fw)
        } else {
            None
        };
        let mut word = 0u64;
        for (k, (&s, &state)) in sn.iter().zip(&st).enumerate() {
            if state == 0 || state.unsigned_abs() > 64 {
                return Err(err(&stp, format!("state {state} at {k} (±1..64 expected)")));
            }
            let line = (state.unsigned_abs() - 1) as u8;
            let on = state > 0;
            word = match &fw {
                Some(fw) => fw[k] as u64,
                None if on => word | (1 << line),
                None => word & !(1 << line),
            };
            ttl.push(TtlEvent {
                index: s - first_sample_number,
                line,
                state: u8::from(on),
                word,
            });
        }
    }
    ttl.sort_by_key(|e| e.index);
    Ok(Recording {
        stream,
        sample_rate,
        channel_names,
        bit_volts,
        data,
        first_sample_number,
        ttl,
        source_node,
    })
}

/// Publishes a [`Recording`] as the File Reader + ZMQ Interface would (see the module docs).
pub struct RecordingSource {
    rec: Arc<Recording>,
    block: usize,
    loops: u32,
    /// Absolute position (samples since the start, over every pass).
    pos: u64,
    block_index: u64,
    message_num: i32,
    queue: std::collections::VecDeque<(u64, Vec<Vec<u8>>)>,
    base_ms: i64,
}

impl RecordingSource {
    /// Plays `rec` `loops` times (0 = until stopped) in GUI-sized blocks.
    pub fn new(rec: Arc<Recording>, loops: u32) -> Self {
        let block = BlockSize::gui_block(rec.sample_rate);
        RecordingSource {
            rec,
            block,
            loops,
            pos: 0,
            block_index: 0,
            message_num: 0,
            queue: Default::default(),
            base_ms: crate::sim::now_ms(),
        }
    }

    /// Samples per block.
    pub fn block_size(&self) -> usize {
        self.block
    }

    fn next_mn(&mut self) -> i64 {
        self.message_num = self.message_num.wrapping_add(1);
        i64::from(self.message_num)
    }

    fn cut(header: String) -> Vec<u8> {
        // The plugin sizes frame 1 in characters (the JUCE length bug).
        let n = header.chars().count();
        header.into_bytes()[..n].to_vec()
    }

    fn fill(&mut self) -> bool {
        let len = self.rec.samples() as u64;
        let total = if self.loops == 0 {
            u64::MAX
        } else {
            len * u64::from(self.loops)
        };
        if self.pos >= total {
            return false;
        }
        let n = (self.block as u64).min(total - self.pos) as usize;
        let first = (self.pos % len) as usize;
        let t_ns =
            (self.block_index as f64 * self.block as f64 / self.rec.sample_rate * 1e9) as u64;
        let ts = Some(self.base_ms + (t_ns / 1_000_000) as i64);
        let rec = self.rec.clone();
        // Events whose file index falls in this block (which may wrap past the file's end).
        for k in 0..2 {
            let (lo, hi) = if k == 0 {
                (first, (first + n).min(len as usize))
            } else if first + n > len as usize {
                (0, first + n - len as usize)
            } else {
                break;
            };
            for e in rec
                .ttl
                .iter()
                .filter(|e| e.index >= lo as i64 && e.index < hi as i64)
            {
                let mn = self.next_mn();
                let h = juce_event_header(mn, &rec.stream, rec.source_node, e.index, 10, ts);
                let mut p = vec![e.line, e.state];
                p.extend_from_slice(&e.word.to_le_bytes());
                self.queue
                    .push_back((t_ns, vec![EVENT_ENVELOPE.to_vec(), Self::cut(h), p]));
            }
        }
        let rate = f64::from(rec.sample_rate as f32);
        for c in 0..rec.channels() {
            let mn = self.next_mn();
            let h = juce_data_header(
                mn,
                &rec.stream,
                c as u32,
                Some(&rec.channel_names[c]),
                n,
                first as i64,
                rate,
                ts,
            );
            let mut p = Vec::with_capacity(n * 4);
            for j in 0..n {
                let i = (first + j) % len as usize;
                p.extend_from_slice(&rec.value(c, i).to_le_bytes());
            }
            self.queue
                .push_back((t_ns, vec![DATA_ENVELOPE.to_vec(), Self::cut(h), p]));
        }
        self.pos += n as u64;
        self.block_index += 1;
        true
    }
}

impl MessageSource for RecordingSource {
    fn next_message(&mut self) -> Option<(u64, Vec<Vec<u8>>)> {
        if self.queue.is_empty() && !self.fill() {
            return None;
        }
        self.queue.pop_front()
    }
    fn passes(&self) -> u64 {
        self.pos / self.rec.samples().max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_errors() {
        let d = std::env::temp_dir().join(format!("npy-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("a.npy");
        let vals: Vec<i16> = vec![1, -2, 3];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&p, "<i2", 3, &bytes).unwrap();
        assert_eq!(read_npy_ints(&p).unwrap(), vec![1, -2, 3]);
        let raw = std::fs::read(&p).unwrap();
        std::fs::write(&p, &raw[..raw.len() - 1]).unwrap();
        let e = read_npy_ints(&p).unwrap_err();
        assert!(e.contains("a.npy") && e.contains("truncated"), "{e}");
        assert!(parse_npy_ints(b"hello world").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
