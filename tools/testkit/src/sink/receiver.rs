//! [`Sink`]: the socket and its receiver thread.

use super::*;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(super) struct Shared {
    state: Mutex<Verifier>,
    pub(super) cond: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Verifier> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running OSC receiver/verifier (see the module docs).
pub struct Sink {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    local: SocketAddr,
    effective_rcvbuf: usize,
    rcvbuf_forced: bool,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("local", &self.local)
            .field("effective_rcvbuf", &self.effective_rcvbuf)
            .field("rcvbuf_forced", &self.rcvbuf_forced)
            .finish()
    }
}

pub(super) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

pub(super) fn validate(cfg: &SinkConfig) -> io::Result<()> {
    if cfg.layout == Layout::Any {
        return Ok(());
    }
    if cfg.channels.is_empty() {
        return Err(invalid("sink: no channels configured"));
    }
    if cfg.channels.windows(2).any(|p| p[0] >= p[1]) {
        return Err(invalid("sink: channels must be strictly ascending"));
    }
    if cfg.factor == 0 || cfg.wrap <= cfg.factor {
        return Err(invalid("sink: need 1 <= factor < wrap"));
    }
    let max_ch = u64::from(*cfg.channels.last().unwrap_or(&0));
    if (max_ch + 1) * u64::from(cfg.wrap) > VALUE_LIMIT {
        return Err(invalid(
            "sink: (max channel + 1) * wrap exceeds 2^24 (values not exact in f32)",
        ));
    }
    Ok(())
}

impl Sink {
    /// Binds the socket and starts the receiver thread `osc_sink`.
    pub fn start(cfg: SinkConfig) -> io::Result<Sink> {
        use socket2::{Domain, Protocol, Socket, Type};
        validate(&cfg)?;
        let sock = Socket::new(
            Domain::for_address(cfg.bind),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        let mut rcvbuf_forced = false;
        if cfg.recv_buffer_bytes > 0 {
            #[cfg(target_os = "linux")]
            {
                rcvbuf_forced = linux::force_recv_buffer(&sock, cfg.recv_buffer_bytes);
            }
            if !rcvbuf_forced {
                // A refused or capped size is not fatal: the effective size is reported.
                let _ = sock.set_recv_buffer_size(cfg.recv_buffer_bytes);
            }
        }
        sock.bind(&cfg.bind.into())?;
        let effective_rcvbuf = sock.recv_buffer_size().unwrap_or(0);
        sock.set_read_timeout(Some(RECV_TIMEOUT))?;
        #[cfg(target_os = "linux")]
        linux::enable_rxq_ovfl(&sock);
        let sock: UdpSocket = sock.into();
        let local = sock.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Verifier::new(&cfg)),
            cond: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("osc_sink".into())
            .spawn(move || run(sock, &sh, &st))?;
        Ok(Sink {
            shared,
            stop,
            thread: Some(thread),
            local,
            effective_rcvbuf,
            rcvbuf_forced,
        })
    }

    /// The bound address (with the actual port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `SO_RCVBUF` as read back after setting it (Linux reports twice the granted request).
    pub fn effective_recv_buffer(&self) -> usize {
        self.effective_rcvbuf
    }

    /// True when the buffer was set with `SO_RCVBUFFORCE` (beyond `net.core.rmem_max`);
    /// false when that was refused (no `CAP_NET_ADMIN`, not Linux) and `SO_RCVBUF` was used.
    pub fn recv_buffer_forced(&self) -> bool {
        self.rcvbuf_forced
    }

    /// Live snapshot of the counters.
    pub fn report(&self) -> SinkReport {
        self.shared.lock().report.clone()
    }

    /// Waits until at least `n` rows were received or `timeout` elapsed; true if reached.
    pub fn wait_for_rows(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(|r| r.rows >= n, timeout)
    }

    pub(super) fn wait_until(&self, pred: impl Fn(&SinkReport) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.lock();
        loop {
            if pred(&g.report) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .shared
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub(super) fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the receiver thread (within ~50 ms) and returns the final report.
    pub fn stop(mut self) -> SinkReport {
        self.shutdown();
        self.report()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown();
    }
}
