//! The heartbeat REP socket (spec §2.1).

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Removes commas that are directly followed (after whitespace) by `}` or `]`, outside strings —
/// JUCE's legacy object/array parser accepts such trailing commas.
pub(super) fn strip_trailing_commas(s: &str) -> String {
    let b: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    let mut esc = false;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        } else if c == ',' {
            let next = b[i + 1..].iter().find(|x| !x.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The reply the plugin sends to one heartbeat request frame (spec §2.1, §6.6). Models JUCE's
/// `JSON::parse(String, var&)`: the text ends at the first NUL (64 000-byte buffer); empty or
/// whitespace-only text is accepted; the top level must be an object or array; trailing text after
/// it and trailing commas are tolerated. `type == "event"` → [`REPLY_EVENT`]; other valid input →
/// [`REPLY_HEARTBEAT`]; otherwise [`REPLY_INVALID`].
pub fn heartbeat_reply(request: &[u8]) -> &'static [u8] {
    let req = &request[..request.len().min(HEARTBEAT_BUFFER - 1)];
    let req = match req.iter().position(|&b| b == 0) {
        Some(p) => &req[..p],
        None => req,
    };
    let text = String::from_utf8_lossy(req);
    let t = text.trim_start();
    if t.is_empty() {
        return REPLY_HEARTBEAT;
    }
    if !(t.starts_with('{') || t.starts_with('[')) {
        return REPLY_INVALID;
    }
    let cleaned = strip_trailing_commas(t);
    let mut it = serde_json::Deserializer::from_str(&cleaned).into_iter::<serde_json::Value>();
    match it.next() {
        Some(Ok(v)) => {
            if v.get("type").and_then(|x| x.as_str()) == Some("event") {
                REPLY_EVENT
            } else {
                REPLY_HEARTBEAT
            }
        }
        _ => REPLY_INVALID,
    }
}

/// Answers heartbeats on `sock` until `stop` is set or the context terminates.
pub(super) fn heartbeat_loop(sock: zmq::Socket, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        match sock.poll(zmq::POLLIN, POLL_SLICE_MS) {
            Ok(n) if n > 0 => {}
            Ok(_) => continue,
            Err(zmq::Error::EINTR) => continue,
            Err(_) => break,
        }
        let frames = match sock.recv_multipart(zmq::DONTWAIT) {
            Ok(f) => f,
            Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => continue,
            Err(_) => break,
        };
        let first: &[u8] = frames.first().map(|f| f.as_slice()).unwrap_or(&[]);
        let reply = heartbeat_reply(first);
        // Counted before the reply goes out: a client that has its reply must find it counted.
        answered.fetch_add(1, Ordering::Relaxed);
        if sock.send(reply, 0).is_err() {
            break;
        }
    }
    let _ = sock.set_linger(0);
}

pub(super) struct HeartbeatServer {
    stop: Arc<AtomicBool>,
    pub(super) answered: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl HeartbeatServer {
    pub(super) fn spawn(sock: zmq::Socket) -> Result<HeartbeatServer, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s2, a2) = (stop.clone(), answered.clone());
        let thread = std::thread::Builder::new()
            .name("oe_sim_hb".to_string())
            .spawn(move || heartbeat_loop(sock, s2, a2))
            .map_err(|e| format!("cannot spawn heartbeat thread: {e}"))?;
        Ok(HeartbeatServer {
            stop,
            answered,
            thread: Some(thread),
        })
    }

    pub(super) fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HeartbeatServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
