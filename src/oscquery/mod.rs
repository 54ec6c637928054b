//! OSCQuery: receivers discover the bridge's streams instead of being told the addresses.
//!
//! An opt-in, read-only HTTP/1.1 server on its own thread (`oscquery`), off the hot path, that
//! answers the OSCQuery proposal's queries (`GET /`, any sub-path, `?HOST_INFO`, `?TYPE`,
//! `?CONTENTS`, …) from a [`namespace::Snapshot`] the controller replaces whenever the outputs'
//! layout (channel set, stream, rate) changes. Optionally the service is advertised over mDNS
//! as `_oscjson._tcp` (the `mdns-sd` crate).
//!
//! The HTTP side is hand-written on `std::net`: one GET or HEAD per connection, a request of at
//! most 8 KiB read within 2 s, the reply taken by the client within 2 more seconds, no file
//! serving, `Connection: close`. A bad request gets a 4xx
//! and the connection is closed; nothing a client sends can stop or stall the thread for longer
//! than that bound. A general HTTP crate would bring its own thread pool and no size bound for
//! this handful of lines.

pub mod bridge;
pub mod namespace;

use namespace::{respond, Snapshot};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request head read (request line + headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// Longest time one request may take to arrive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest time one reply may take to be taken by the client.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// mDNS service type of OSCQuery servers.
pub const SERVICE_TYPE: &str = "_oscjson._tcp.local.";

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (the config's `oscquery.host`/`port`; 127.0.0.1 by default).
    pub bind: SocketAddr,
    /// Advertise `_oscjson._tcp` over mDNS.
    pub mdns: bool,
    /// Instance name (HOST_INFO `NAME` and the mDNS instance).
    pub name: String,
}

/// Requests served, by outcome.
#[derive(Debug, Default)]
pub struct Counters {
    /// Answered 200.
    pub ok: AtomicU64,
    /// Answered 204 or 4xx, or cut off (timeout, too large).
    pub rejected: AtomicU64,
}

/// A running OSCQuery server (stops when dropped).
pub struct OscQuery {
    addr: SocketAddr,
    snapshot: Arc<Mutex<Snapshot>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    mdns: Option<mdns_sd::ServiceDaemon>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for OscQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OscQuery")
            .field("addr", &self.addr)
            .field("mdns", &self.mdns.is_some())
            .finish()
    }
}

impl OscQuery {
    /// Binds, starts the server thread and, if asked, the mDNS advertisement.
    pub fn start(opts: &Options, initial: Snapshot) -> io::Result<OscQuery> {
        let listener = TcpListener::bind(opts.bind)?;
        let addr = listener.local_addr()?;
        let snapshot = Arc::new(Mutex::new(initial));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = {
            let (snapshot, stop, counters) = (snapshot.clone(), stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("oscquery".into())
                .spawn(move || serve(listener, &snapshot, &stop, &counters))?
        };
        let mut me = OscQuery {
            addr,
            snapshot,
            stop,
            thread: Some(thread),
            mdns: None,
            counters,
        };
        if opts.mdns {
            me.mdns = Some(advertise(&opts.name, addr).map_err(io::Error::other)?);
        }
        Ok(me)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces what the server describes (a no-op when nothing changed).
    pub fn update(&self, s: Snapshot) {
        if let Ok(mut cur) = self.snapshot.lock() {
            if *cur != s {
                *cur = s;
            }
        }
    }

    /// Requests answered 200, and requests rejected.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counters.ok.load(Ordering::Relaxed),
            self.counters.rejected.load(Ordering::Relaxed),
        )
    }
}

impl Drop for OscQuery {
    fn drop(&mut self) {
        if let Some(d) = self.mdns.take() {
            // Sends the goodbye packets; waiting for the status is not needed.
            let _ = d.shutdown();
        }
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn advertise(name: &str, addr: SocketAddr) -> Result<mdns_sd::ServiceDaemon, String> {
    let daemon = mdns_sd::ServiceDaemon::new().map_err(|e| format!("mDNS: {e}"))?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "openephys-zmq2osc".into());
    let props: &[(&str, &str)] = &[("txtvers", "1")];
    let info = if addr.ip().is_unspecified() {
        mdns_sd::ServiceInfo::new(
            SERVICE_TYPE,
            name,
            &format!("{host}.local."),
            (),
            addr.port(),
            props,
        )
        .map(|i| i.enable_addr_auto())
    } else {
        mdns_sd::ServiceInfo::new(
            SERVICE_TYPE,
            name,
            &format!("{host}.local."),
            addr.ip(),
            addr.port(),
            props,
        )
    }
    .map_err(|e| format!("mDNS service info: {e}"))?;
    daemon
        .register(info)
        .map_err(|e| format!("mDNS register: {e}"))?;
    Ok(daemon)
}

fn serve(listener: TcpListener, snapshot: &Mutex<Snapshot>, stop: &AtomicBool, c: &Counters) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut s) = conn else {
            // A failed accept (e.g. out of fds) must not spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let status = handle(&mut s, snapshot);
        if status == 200 {
            c.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            c.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Writes the reply within what is left of the request's time bound (a client that reads
/// slowly is cut off, not waited for).
fn write_reply(s: &mut TcpStream, status: u16, body: &str, head_only: bool, until: Instant) {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n",
        reason(status)
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    if status != 204 {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    out.push_str("\r\n");
    if !head_only && status != 204 {
        out.push_str(body);
    }
    let mut rest = out.as_bytes();
    while !rest.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_write_timeout(Some(left)).is_err() {
            return;
        }
        match s.write(rest) {
            Ok(0) => return,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    let _ = s.flush();
}

/// Reads the request head within the bounds and answers it; returns the status sent.
fn handle(s: &mut TcpStream, snapshot: &Mutex<Snapshot>) -> u16 {
    let start = Instant::now();
    let until = start + REQUEST_TIMEOUT + REPLY_TIMEOUT;
    let mut buf = [0u8; MAX_REQUEST];
    let mut n = 0;
    let end = loop {
        if let Some(i) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if n == buf.len() {
            write_reply(s, 431, r#"{"error":"request too large"}"#, false, until);
            return 431;
        }
        let left = REQUEST_TIMEOUT.saturating_sub(start.elapsed());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            write_reply(s, 408, r#"{"error":"request timeout"}"#, false, until);
            return 408;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) => return 400, // closed before a whole request: nothing to answer
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                write_reply(s, 408, r#"{"error":"request timeout"}"#, false, until);
                return 408;
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let line = head.lines().next().unwrap_or("");
    let mut it = line.split(' ');
    let (method, target, version) = (it.next(), it.next(), it.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        write_reply(s, 400, r#"{"error":"bad request line"}"#, false, until);
        return 400;
    };
    if !version.starts_with("HTTP/1.") || it.next().is_some() {
        write_reply(s, 400, r#"{"error":"bad request line"}"#, false, until);
        return 400;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            write_reply(
                s,
                405,
                r#"{"error":"read-only: GET or HEAD"}"#,
                false,
                until,
            );
            return 405;
        }
    };
    // An absolute-form target (`http://host/path`) is reduced to its path.
    let target = match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("/", |j| &target[i + 3 + j..]),
        None => target,
    };
    let reply = match snapshot.lock() {
        Ok(snap) => respond(&snap, target),
        Err(_) => namespace::Reply {
            status: 500,
            body: String::new(),
        },
    };
    write_reply(s, reply.status, &reply.body, head_only, until);
    reply.status
}
