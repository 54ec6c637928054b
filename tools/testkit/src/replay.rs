//! Publishes recorded ZMQ Interface messages (a zmqcap capture, or messages built from an Open
//! Ephys recording by [`crate::recording`]) the way the GUI sent them: same frames, on an XPUB
//! socket with heartbeats answered on port + 1, at the original pace, faster, or as fast as the
//! socket takes them, once or looped.
//!
//! On a loop the messages go out again with `message_num` continuing (the plugin's counter does
//! not restart while acquisition runs) and `sample_num` as recorded, i.e. going backwards, like
//! the GUI's File Reader, whose sample numbers are the file index.

use crate::sim::Publisher;
use crate::zmqcap::Record;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Replay pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// The recorded inter-message times.
    Original,
    /// The recorded times divided by this factor (> 0).
    Factor(f64),
    /// No pacing: as fast as the socket takes them (lossless with `hwm` 0).
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        match s {
            "max" => Ok(Speed::Max),
            "1" | "original" => Ok(Speed::Original),
            _ => match s.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed::Factor(x)),
                _ => Err(format!(
                    "bad speed {s:?}: a factor > 0 (e.g. 2, 0.5), \"original\" or \"max\""
                )),
            },
        }
    }
}

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Interface to bind.
    pub host: String,
    /// Data port (heartbeats on port + 1); 0 picks a free pair.
    pub port: u16,
    /// Pace.
    pub speed: Speed,
    /// ZMQ_SNDHWM; 0 = unlimited (nothing dropped at the publisher).
    pub hwm: i32,
    /// Wait this long for a subscriber before the first message (None: start at once, like
    /// the plugin).
    pub wait_for_subscriber: Option<Duration>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            host: "127.0.0.1".into(),
            port: 0,
            speed: Speed::Original,
            hwm: 0,
            wait_for_subscriber: Some(Duration::from_secs(30)),
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Messages sent.
    pub messages: u64,
    /// Passes completed.
    pub loops: u64,
    /// Heartbeats answered.
    pub heartbeats: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Returns `header` with its top-level `"message_num": N` replaced by `N + add` (wrapping like
/// the plugin's signed 32-bit counter); `None` if the header has no such field.
pub fn shift_message_num(header: &[u8], add: i64) -> Option<Vec<u8>> {
    const KEY: &[u8] = b"\"message_num\":";
    let at = header.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let mut i = at;
    while i < header.len() && header[i] == b' ' {
        i += 1;
    }
    let start = i;
    if i < header.len() && header[i] == b'-' {
        i += 1;
    }
    while i < header.len() && header[i].is_ascii_digit() {
        i += 1;
    }
    let n: i64 = std::str::from_utf8(&header[start..i]).ok()?.parse().ok()?;
    let m = (n.wrapping_add(add)) as i32;
    let mut out = Vec::with_capacity(header.len() + 8);
    out.extend_from_slice(&header[..start]);
    out.extend_from_slice(m.to_string().as_bytes());
    out.extend_from_slice(&header[i..]);
    Some(out)
}

/// Messages to publish, with the time (ns from the start) each is due.
pub trait MessageSource: Send {
    /// The next message and when it is due; `None` at the end.
    fn next_message(&mut self) -> Option<(u64, Vec<Vec<u8>>)>;
    /// Passes completed so far.
    fn passes(&self) -> u64;
}

/// A capture's records, `loops` times (0 = forever), `message_num` continuing on each pass.
pub struct CaptureSource {
    records: Arc<Vec<Record>>,
    loops: u32,
    pass: u64,
    idx: usize,
    mn_step: i64,
    pass_ns: u64,
}

impl CaptureSource {
    /// Plays `records` `loops` times (0 = until stopped).
    pub fn new(records: Arc<Vec<Record>>, loops: u32) -> Self {
        let last_t = records.last().map_or(0, |r| r.t_ns);
        // One pass lasts the capture plus one mean inter-message interval.
        let pass_ns = last_t + last_t / records.len().max(1) as u64;
        let mn_step = max_message_num(&records);
        CaptureSource {
            records,
            loops,
            pass: 0,
            idx: 0,
            mn_step,
            pass_ns,
        }
    }
}

impl MessageSource for CaptureSource {
    fn next_message(&mut self) -> Option<(u64, Vec<Vec<u8>>)> {
        if self.records.is_empty() {
            return None;
        }
        if self.idx == self.records.len() {
            self.idx = 0;
            self.pass += 1;
        }
        if self.loops != 0 && self.pass >= u64::from(self.loops) {
            return None;
        }
        let r = &self.records[self.idx];
        self.idx += 1;
        let mut frames = r.frames.clone();
        let add = self.mn_step.wrapping_mul(self.pass as i64);
        if add != 0 && frames.len() >= 2 {
            if let Some(h) = shift_message_num(&frames[1], add) {
                frames[1] = h;
            }
        }
        Some((self.pass * self.pass_ns + r.t_ns, frames))
    }
    fn passes(&self) -> u64 {
        if self.idx == self.records.len() {
            self.pass + 1
        } else {
            self.pass
        }
    }
}

/// The highest `message_num` in the records (0 if none carries one).
fn max_message_num(records: &[Record]) -> i64 {
    records
        .iter()
        .filter_map(|r| r.frames.get(1))
        .filter_map(|h| {
            let s = std::str::from_utf8(h).ok()?;
            let at = s.find("\"message_num\":")? + 14;
            let t = s[at..].trim_start();
            let end = t
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(t.len());
            t[..end].parse::<i64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// A replay running on its own thread.
pub struct Replayer {
    port: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<ReplayStats>>,
}

impl Replayer {
    /// Binds the sockets and starts publishing a capture's `records` `loops` times (0 = until
    /// stopped) on a thread.
    pub fn start(
        ctx: &zmq::Context,
        records: Arc<Vec<Record>>,
        loops: u32,
        cfg: ReplayConfig,
    ) -> Result<Replayer, String> {
        if records.is_empty() {
            return Err("nothing to replay (no records)".into());
        }
        Self::start_source(ctx, Box::new(CaptureSource::new(records, loops)), cfg)
    }

    /// Binds the sockets and publishes what `source` yields on a thread.
    pub fn start_source(
        ctx: &zmq::Context,
        source: Box<dyn MessageSource>,
        cfg: ReplayConfig,
    ) -> Result<Replayer, String> {
        let publ = Publisher::bind_pair_with_hwm(ctx, &cfg.host, cfg.port, cfg.hwm)?;
        let port = publ.port();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s2, n2) = (stop.clone(), sent.clone());
        let thread = std::thread::Builder::new()
            .name("replay".into())
            .spawn(move || run(publ, source, &cfg, &s2, &n2))
            .map_err(|e| format!("cannot spawn replay thread: {e}"))?;
        Ok(Replayer {
            port,
            stop,
            sent,
            thread: Some(thread),
        })
    }

    /// The data port (heartbeats on port + 1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// True once every pass is done (or it failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the end of the replay (forever with `loops` 0: use [`Replayer::stop`]).
    pub fn wait(mut self) -> ReplayStats {
        self.join()
    }

    /// Stops and returns the statistics.
    pub fn stop(mut self) -> ReplayStats {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    fn join(&mut self) -> ReplayStats {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(s)) => s,
            Some(Err(_)) => ReplayStats {
                error: Some("replay thread panicked".into()),
                ..Default::default()
            },
            None => ReplayStats::default(),
        }
    }
}

impl Drop for Replayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.join();
    }
}

fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(50)));
    }
}

fn run(
    mut publ: Publisher,
    mut source: Box<dyn MessageSource>,
    cfg: &ReplayConfig,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> ReplayStats {
    let mut st = ReplayStats::default();
    if let Some(t) = cfg.wait_for_subscriber {
        if let Err(e) = publ.wait_for_subscriber(t) {
            st.error = Some(e);
            return st;
        }
    }
    let t0 = Instant::now();
    while let Some((t, frames)) = source.next_message() {
        let due = match cfg.speed {
            Speed::Max => None,
            Speed::Original => Some(t0 + Duration::from_nanos(t)),
            Speed::Factor(x) => Some(t0 + Duration::from_secs_f64(t as f64 / 1e9 / x)),
        };
        if let Some(d) = due {
            if !sleep_until(d, stop) {
                break;
            }
        } else if stop.load(Ordering::Relaxed) {
            break;
        }
        let fr: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        if let Err(e) = publ.send_raw(&fr) {
            st.error = Some(e);
            break;
        }
        st.messages += 1;
        sent.store(st.messages, Ordering::Relaxed);
    }
    st.loops = source.passes();
    st.heartbeats = publ.heartbeats_answered();
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_num_shift_keeps_the_rest_byte_for_byte() {
        let h = b"{\r\n  \"message_num\": 41,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"channel_name\": \"\xce\xb1\"";
        let s = shift_message_num(h, 1000).unwrap();
        assert_eq!(
            s,
            b"{\r\n  \"message_num\": 1041,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"channel_name\": \"\xce\xb1\"".to_vec()
        );
        let w = shift_message_num(b"{\"message_num\": 2147483647}", 1).unwrap();
        assert_eq!(w, b"{\"message_num\": -2147483648}".to_vec());
        assert_eq!(shift_message_num(b"{\"type\": 1}", 1), None);
    }

    #[test]
    fn speed_parses() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("2.5".parse::<Speed>(), Ok(Speed::Factor(2.5)));
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }
}
