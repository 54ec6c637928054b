//! zmqcap v1: byte-exact recordings of what a ZeroMQ publisher sent, one record per multipart
//! message (the format of the real-GUI captures in `shared/fixtures`, see their README):
//!
//! ```text
//! "ZMQCAP1\n"                                  8 bytes
//! record*:
//!   u64 LE  t_ns      arrival time, ns since the first record (monotonic clock)
//!   u32 LE  nframes
//!   nframes × { u32 LE length ; length bytes }
//! ```
//!
//! Files may be gzip-compressed (`.zmqcap.gz`); the reader detects it from the gzip magic. The
//! [`Writer`] streams records to any `io::Write` (plain or gzip) and is meant for a non-hot
//! writer thread: it allocates nothing per record beyond what its `BufWriter` holds.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// File magic (8 bytes).
pub const MAGIC: &[u8; 8] = b"ZMQCAP1\n";

/// Frames longer than this are treated as corruption by the reader (64 MiB).
pub const MAX_FRAME: usize = 64 << 20;
/// Records with more frames than this are treated as corruption by the reader.
pub const MAX_FRAMES: usize = 1024;

/// One recorded multipart message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Arrival time, ns since the first record.
    pub t_ns: u64,
    /// The frames, in order.
    pub frames: Vec<Vec<u8>>,
}

/// An error reading a capture: which file, which record, what is wrong.
#[derive(Debug)]
pub struct CapError {
    /// The file (empty when reading from a stream).
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for CapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for CapError {}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ends inside a field ({got} of {} bytes)", buf.len()),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads zmqcap records one by one from a stream (already decompressed).
pub struct Reader<R: Read> {
    r: R,
    index: u64,
}

impl<R: Read> Reader<R> {
    /// Checks the magic.
    pub fn new(mut r: R) -> Result<Self, String> {
        let mut m = [0u8; 8];
        match read_exact_or(&mut r, &mut m) {
            Ok(true) if &m == MAGIC => Ok(Reader { r, index: 0 }),
            Ok(true) => Err(format!("not a zmqcap v1 file (magic {m:02x?})")),
            Ok(false) => Err("empty file (no zmqcap magic)".into()),
            Err(e) => Err(format!("not a zmqcap v1 file: {e}")),
        }
    }

    /// The next record, `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        let i = self.index;
        let mut head = [0u8; 12];
        match read_exact_or(&mut self.r, &mut head) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => return Err(format!("record {i}: truncated header: {e}")),
        }
        let t_ns = u64::from_le_bytes(head[..8].try_into().unwrap());
        let n = u32::from_le_bytes(head[8..].try_into().unwrap()) as usize;
        if n == 0 || n > MAX_FRAMES {
            return Err(format!(
                "record {i}: {n} frames (1..={MAX_FRAMES} expected)"
            ));
        }
        let mut frames = Vec::with_capacity(n);
        for k in 0..n {
            let mut l = [0u8; 4];
            match read_exact_or(&mut self.r, &mut l) {
                Ok(true) => {}
                Ok(false) => return Err(format!("record {i}: file ends before frame {k}")),
                Err(e) => return Err(format!("record {i} frame {k}: {e}")),
            }
            let len = u32::from_le_bytes(l) as usize;
            if len > MAX_FRAME {
                return Err(format!("record {i} frame {k}: length {len} > {MAX_FRAME}"));
            }
            let mut f = vec![0u8; len];
            match read_exact_or(&mut self.r, &mut f) {
                Ok(true) => {}
                Ok(false) if len == 0 => {}
                Ok(false) => {
                    return Err(format!(
                        "record {i} frame {k}: file ends before its {len} bytes"
                    ))
                }
                Err(e) => return Err(format!("record {i} frame {k}: {e}")),
            }
            frames.push(f);
        }
        self.index += 1;
        Ok(Some(Record { t_ns, frames }))
    }
}

/// Opens a capture (gzip or plain, detected from the content).
pub fn open(path: &Path) -> Result<Reader<Box<dyn Read + Send>>, CapError> {
    let err = |what: String| CapError {
        path: path.to_path_buf(),
        what,
    };
    let f = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
    let mut br = BufReader::new(f);
    let gz = {
        use std::io::BufRead;
        let b = br
            .fill_buf()
            .map_err(|e| err(format!("cannot read: {e}")))?;
        b.starts_with(&[0x1f, 0x8b])
    };
    let r: Box<dyn Read + Send> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(br))
    } else {
        Box::new(br)
    };
    Reader::new(r).map_err(err)
}

/// Reads a whole capture into memory.
pub fn read_all(path: &Path) -> Result<Vec<Record>, CapError> {
    let mut r = open(path)?;
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push(rec),
            Ok(None) => return Ok(out),
            Err(what) => {
                return Err(CapError {
                    path: path.to_path_buf(),
                    what,
                })
            }
        }
    }
}

/// Streams records into a zmqcap file. Timestamps are given by the caller (ns since its first
/// record). Use it from a writer thread: [`Writer::write_record`] does I/O.
pub struct Writer<W: Write> {
    w: W,
    records: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the magic.
    pub fn new(mut w: W) -> io::Result<Self> {
        w.write_all(MAGIC)?;
        Ok(Writer { w, records: 0 })
    }

    /// Appends one multipart message.
    pub fn write_record<F: AsRef<[u8]>>(&mut self, t_ns: u64, frames: &[F]) -> io::Result<()> {
        if frames.is_empty() || frames.len() > MAX_FRAMES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} frames (1..={MAX_FRAMES} allowed)", frames.len()),
            ));
        }
        self.w.write_all(&t_ns.to_le_bytes())?;
        self.w.write_all(&(frames.len() as u32).to_le_bytes())?;
        for f in frames {
            let f = f.as_ref();
            let len = u32::try_from(f.len())
                .ok()
                .filter(|&l| l as usize <= MAX_FRAME)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
            self.w.write_all(&len.to_le_bytes())?;
            self.w.write_all(f)?;
        }
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// A gzip-compressed capture file (`.zmqcap.gz`), buffered.
pub type GzFileWriter = Writer<flate2::write::GzEncoder<BufWriter<File>>>;

/// Creates a capture file: gzip-compressed when the name ends in `.gz`, plain otherwise.
pub fn create(path: &Path) -> io::Result<Writer<Box<dyn Write + Send>>> {
    let f = BufWriter::new(File::create(path)?);
    let w: Box<dyn Write + Send> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(GzFinish(Some(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        ))))
    } else {
        Box::new(f)
    };
    Writer::new(w)
}

/// Finishes the gzip stream on flush-at-drop (a boxed encoder otherwise only writes its
/// trailer when dropped, silently ignoring errors).
struct GzFinish(Option<flate2::write::GzEncoder<BufWriter<File>>>);

impl Write for GzFinish {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(e) => e.write(buf),
            None => Err(io::Error::other("capture already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Some(e) => e.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for GzFinish {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            let _ = e.finish().and_then(|mut w| w.flush());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_plain_and_gzip() {
        let dir = std::env::temp_dir().join(format!("zmqcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a.zmqcap", "a.zmqcap.gz"] {
            let p = dir.join(name);
            {
                let mut w = create(&p).unwrap();
                w.write_record(0, &[&b"DATA\0"[..], b"{}", &[1, 2, 3, 4]])
                    .unwrap();
                w.write_record(42, &[b"EVENT\0".to_vec(), Vec::new()])
                    .unwrap();
                assert_eq!(w.records(), 2);
                w.finish().unwrap();
            }
            let recs = read_all(&p).unwrap();
            assert_eq!(recs.len(), 2);
            assert_eq!(recs[0].frames[2], vec![1, 2, 3, 4]);
            assert_eq!((recs[1].t_ns, recs[1].frames[1].len()), (42, 0));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_files_name_the_problem() {
        let e = Reader::new(&b"NOTACAP!"[..]).err().unwrap();
        assert!(e.contains("not a zmqcap"), "{e}");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&10u32.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let mut r = Reader::new(&bytes[..]).unwrap();
        let e = r.next_record().unwrap_err();
        assert!(e.contains("record 0 frame 0"), "{e}");
        let e = read_all(Path::new("/nonexistent/x.zmqcap")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.zmqcap"), "{e}");
    }
}
