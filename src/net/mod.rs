//! UDP datagram sender for the OSC output: one connected, non-blocking socket, batched sends.
//!
//! * Linux (`linux.rs`): `sendmmsg(2)` over preallocated header/iovec arrays, plus UDP GSO
//!   (`UDP_SEGMENT`) for runs of equal-size datagrams that are contiguous in the arena.
//! * Everywhere else, and on Linux with [`SenderOptions::force_portable`] (`fallback.rs`): one
//!   `send(2)` per datagram through `socket2`.
//!
//! This module tree is the only place in the crate with platform `cfg`s. All `unsafe` code lives in
//! `linux.rs`; this file denies it and `fallback.rs` forbids it.
//!
//! [`UdpSender::send_batch`] never allocates, never fails and never blocks longer than
//! [`SenderOptions::would_block_retry`] (plus the syscalls themselves): errors are counted in
//! [`SendStats`], the datagram concerned is dropped, and the rest of the batch still goes out.
#![deny(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod fallback;

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod imp;

/// Max datagrams handed to one `sendmmsg` call (<= 1024 = `UIO_MAXIOV`). Larger batches passed to
/// [`UdpSender::send_batch`] are split into chunks of this size.
pub const BATCH_MAX: usize = 256;

/// At most this many segments in one GSO super-buffer (kernel limit is 64 on old kernels, 128 on 6.x).
pub const GSO_MAX_SEGMENTS: usize = 64;

/// At most this many payload bytes in one GSO super-buffer (65 535 - 20 (IPv4) - 8 (UDP)).
pub const GSO_MAX_BYTES: usize = 65_507;

/// Options for [`UdpSender::connect`].
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// `SO_SNDBUF` request in bytes (the kernel doubles it and caps it at `net.core.wmem_max`).
    pub send_buffer_bytes: usize,
    /// Use the portable one-`send`-per-datagram loop even on Linux.
    pub force_portable: bool,
    /// Linux: send runs of equal-length, contiguous datagrams with one `sendmsg` + `UDP_SEGMENT`.
    pub use_gso: bool,
    /// How long one `send_batch` call keeps retrying `EAGAIN` before it drops datagrams (and
    /// counts them). The budget is per call, whatever its length: the encoder hands over up to
    /// `output::TRANSMIT_BATCH` = 1024 datagrams per call (a whole 696-row block at 256 ch),
    /// so a socket that stays full delays one block by at most this much.
    pub would_block_retry: Duration,
    /// Allow sending to a broadcast address (`SO_BROADCAST`).
    pub broadcast: bool,
    /// TTL for a multicast destination (`IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS`).
    pub multicast_ttl: u32,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            send_buffer_bytes: 4 << 20,
            force_portable: false,
            use_gso: true,
            would_block_retry: Duration::from_millis(2),
            broadcast: false,
            multicast_ttl: 1,
        }
    }
}

/// Cumulative counters of one [`UdpSender`] (plain `u64`s; the owner thread publishes them).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendStats {
    /// Datagrams the kernel accepted.
    pub datagrams_sent: u64,
    /// Payload bytes the kernel accepted.
    pub bytes_sent: u64,
    /// Send syscalls made (including ones that failed or were interrupted).
    pub syscalls: u64,
    /// Datagrams dropped on `ECONNREFUSED` (receiver not up yet).
    pub refused: u64,
    /// Datagrams dropped because the socket stayed full (`EAGAIN`) past the retry budget.
    pub would_block_dropped: u64,
    /// Datagrams dropped on `EMSGSIZE` (outside of GSO, where it triggers a fallback instead).
    pub too_big: u64,
    /// Datagrams dropped on any other error (including `(off, len)` ranges outside the arena).
    pub other_errors: u64,
    /// Successful GSO `sendmsg` calls (each carrying 2..=64 datagrams).
    pub gso_batches: u64,
    /// Times GSO was disabled after the kernel rejected it (`EINVAL`/`EIO`/`EMSGSIZE`): 0 or 1.
    pub gso_fallbacks: u64,
}

impl SendStats {
    /// Datagrams dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.refused + self.would_block_dropped + self.too_big + self.other_errors
    }
}

/// Result of one [`UdpSender::send_batch`]: `sent + dropped == dgrams.len()`.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Datagrams dropped (and counted in [`SendStats`]).
    pub dropped: usize,
}

impl std::ops::AddAssign for BatchOutcome {
    fn add_assign(&mut self, rhs: Self) {
        self.sent += rhs.sent;
        self.dropped += rhs.dropped;
    }
}

/// What a [`RateLimitedLog`] line is about; each kind has its own rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// ECONNREFUSED: nobody listens at the destination (yet).
    Refused = 0,
    /// The send buffer stayed full past the retry budget.
    WouldBlock,
    /// EMSGSIZE: datagram larger than the path allows.
    TooBig,
    /// Any other send error.
    Other,
    /// UDP GSO refused by the kernel or driver; switched to sendmmsg.
    GsoFallback,
}

impl LogKind {
    /// Number of kinds.
    pub const COUNT: usize = 5;
}

/// At most one line per `interval` (one second by default) per [`LogKind`]; lines in between are
/// only counted and reported as "(N more since last)" on the next line printed.
///
/// Nothing is formatted and nothing allocates unless a line is actually printed.
#[derive(Debug, Clone)]
pub struct RateLimitedLog {
    interval: Duration,
    last: [Option<Instant>; LogKind::COUNT],
    suppressed: [u64; LogKind::COUNT],
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl RateLimitedLog {
    /// At most one line per `interval` per kind.
    pub fn new(interval: Duration) -> Self {
        RateLimitedLog {
            interval,
            last: [None; LogKind::COUNT],
            suppressed: [0; LogKind::COUNT],
        }
    }

    /// Decides whether a line of `kind` may be printed at `now`. `Some(n)`: print it, `n` lines of
    /// this kind were suppressed since the last one printed (the counter is reset). `None`: the
    /// line is suppressed and counted.
    pub fn admit(&mut self, kind: LogKind, now: Instant) -> Option<u64> {
        let k = kind as usize;
        match self.last[k] {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.suppressed[k] += 1;
                None
            }
            _ => {
                self.last[k] = Some(now);
                Some(std::mem::take(&mut self.suppressed[k]))
            }
        }
    }

    /// `eprintln!`s `args` (with " (N more since last)" appended when lines were suppressed) if
    /// [`admit`](Self::admit) allows it. Returns whether a line was printed.
    pub fn log(&mut self, kind: LogKind, args: fmt::Arguments<'_>) -> bool {
        match self.admit(kind, Instant::now()) {
            Some(0) => {
                eprintln!("{args}");
                true
            }
            Some(n) => {
                eprintln!("{args} ({n} more since last)");
                true
            }
            None => false,
        }
    }
}

/// How the send loops treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrClass {
    Interrupted,
    WouldBlock,
    Refused,
    TooBig,
    NoSys,
    Other,
}

#[cfg(unix)]
const EMSGSIZE_RAW: i32 = libc::EMSGSIZE;
#[cfg(windows)]
const EMSGSIZE_RAW: i32 = 10040; // WSAEMSGSIZE
#[cfg(not(any(unix, windows)))]
const EMSGSIZE_RAW: i32 = i32::MIN;

pub(crate) fn classify(err: &io::Error) -> ErrClass {
    if err.raw_os_error() == Some(EMSGSIZE_RAW) {
        return ErrClass::TooBig;
    }
    match err.kind() {
        io::ErrorKind::Interrupted => ErrClass::Interrupted,
        io::ErrorKind::WouldBlock => ErrClass::WouldBlock,
        // Windows reports ICMP port unreachable on a connected UDP socket as WSAECONNRESET.
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => ErrClass::Refused,
        io::ErrorKind::Unsupported => ErrClass::NoSys, // ENOSYS
        _ => ErrClass::Other,
    }
}

/// State both send loops share: the socket, counters, log and the per-call `EAGAIN` budget.
pub(crate) struct Shared {
    pub(crate) socket: Socket,
    pub(crate) stats: SendStats,
    dest: SocketAddr,
    log: RateLimitedLog,
    retry: Duration,
    wb_deadline: Option<Instant>,
}

impl Shared {
    /// Called on `EAGAIN`: `true` = yielded, try again; `false` = this call's budget is spent, drop.
    /// The budget (one deadline) is shared by the whole `send_batch` call.
    pub(crate) fn wait_would_block(&mut self) -> bool {
        let now = Instant::now();
        let deadline = *self.wb_deadline.get_or_insert(now + self.retry);
        if now < deadline {
            std::thread::yield_now();
            true
        } else {
            false
        }
    }

    /// Counts `n` dropped datagrams under `class` and logs (rate-limited) why.
    pub(crate) fn count_drop(&mut self, class: ErrClass, n: usize, err: &io::Error) {
        let n64 = n as u64;
        let (counter, kind, what) = match class {
            ErrClass::Refused => (&mut self.stats.refused, LogKind::Refused, "refused"),
            ErrClass::WouldBlock => (
                &mut self.stats.would_block_dropped,
                LogKind::WouldBlock,
                "socket full",
            ),
            ErrClass::TooBig => (&mut self.stats.too_big, LogKind::TooBig, "too big"),
            ErrClass::Interrupted | ErrClass::NoSys | ErrClass::Other => {
                (&mut self.stats.other_errors, LogKind::Other, "error")
            }
        };
        *counter += n64;
        let dest = self.dest;
        self.log.log(
            kind,
            format_args!("net: send to {dest} {what}: {err}; {n} datagram(s) dropped"),
        );
    }
}

enum Backend {
    Portable,
    #[cfg(target_os = "linux")]
    Linux(imp::LinuxSender),
}

/// Owns one connected, non-blocking UDP socket and sends batches of datagrams stored in an arena.
pub struct UdpSender {
    shared: Shared,
    backend: Backend,
    effective_sndbuf: usize,
}

impl UdpSender {
    /// Creates a UDP socket of `dest`'s family, binds it to the unspecified address (port 0),
    /// sets `SO_SNDBUF`, connects it to `dest` and makes it non-blocking. On Linux (unless
    /// `force_portable`) it also probes UDP GSO when `use_gso` is set.
    pub fn connect(dest: SocketAddr, opts: &SenderOptions) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(dest), Type::DGRAM, Some(Protocol::UDP))?;
        let local: SocketAddr = match dest {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        socket.bind(&SockAddr::from(local))?;
        socket.set_send_buffer_size(opts.send_buffer_bytes)?;
        let effective_sndbuf = socket.send_buffer_size()?;
        if opts.broadcast {
            socket.set_broadcast(true)?;
        }
        if dest.ip().is_multicast() {
            match dest {
                SocketAddr::V4(_) => socket.set_multicast_ttl_v4(opts.multicast_ttl)?,
                SocketAddr::V6(_) => socket.set_multicast_hops_v6(opts.multicast_ttl)?,
            }
        }
        socket.connect(&SockAddr::from(dest))?;
        socket.set_nonblocking(true)?;
        let backend = Self::pick_backend(&socket, opts);
        Ok(UdpSender {
            shared: Shared {
                socket,
                stats: SendStats::default(),
                dest,
                log: RateLimitedLog::default(),
                retry: opts.would_block_retry,
                wb_deadline: None,
            },
            backend,
            effective_sndbuf,
        })
    }

    #[cfg(target_os = "linux")]
    fn pick_backend(socket: &Socket, opts: &SenderOptions) -> Backend {
        if opts.force_portable {
            Backend::Portable
        } else {
            Backend::Linux(imp::LinuxSender::new(socket, opts.use_gso))
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn pick_backend(_socket: &Socket, _opts: &SenderOptions) -> Backend {
        Backend::Portable
    }

    /// The local address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr()?.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "socket has a non-IP local address",
            )
        })
    }

    /// `SO_SNDBUF` as read back after setting it (Linux reports twice the request, capped).
    pub fn effective_send_buffer(&self) -> usize {
        self.effective_sndbuf
    }

    /// `"sendmmsg+gso"`, `"sendmmsg"` (Linux; GSO off, unsupported or disabled after a failure)
    /// or `"portable"`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Portable => "portable",
            #[cfg(target_os = "linux")]
            Backend::Linux(l) if l.gso_enabled() => "sendmmsg+gso",
            #[cfg(target_os = "linux")]
            Backend::Linux(_) => "sendmmsg",
        }
    }

    /// How many datagrams of `len` bytes go out in one call: a full GSO super-buffer (at most
    /// [`GSO_MAX_SEGMENTS`], at most [`GSO_MAX_BYTES`] in total) when GSO is on, else 1. A batch
    /// of equal-sized datagrams whose length is a multiple of it has no short super-buffer.
    pub fn gso_run(&self, len: usize) -> usize {
        match &self.backend {
            #[cfg(target_os = "linux")]
            Backend::Linux(l) if l.gso_enabled() && len > 0 => {
                (GSO_MAX_BYTES / len).clamp(1, GSO_MAX_SEGMENTS)
            }
            _ => 1,
        }
    }

    /// Sends every datagram `arena[off..off + len]` for `(off, len)` in `dgrams`, in order.
    ///
    /// Never allocates (except to format a rate-limited error line), never fails, and never waits
    /// on a full socket longer than [`SenderOptions::would_block_retry`] in total per call.
    ///
    /// Error policy (each dropped datagram is counted in [`stats`](Self::stats), and an error line
    /// is printed to stderr at most once a second per kind); the rest of the batch still goes out:
    /// * `EINTR`: retried.
    /// * partial `sendmmsg`: the rest is sent by the next call.
    /// * `ECONNREFUSED` (an ICMP port-unreachable from an earlier datagram, reported on this send:
    ///   the receiver is not up): that datagram is dropped, `refused += 1`. On a GSO send the
    ///   whole super-buffer (up to 64 datagrams) is dropped and all of them count as `refused`.
    ///   Note that `sendmmsg` swallows this error when it hits a datagram after the first of a
    ///   call (the kernel clears it and returns the short count; the datagram is then resent), so
    ///   `refused` undercounts the datagrams lost while the receiver is absent.
    /// * `EAGAIN`/`EWOULDBLOCK`: retried with `yield_now` until the call's budget is spent, then
    ///   that datagram (or GSO super-buffer) is dropped, `would_block_dropped += n`; later
    ///   datagrams of the same call are tried once each without waiting.
    /// * `EMSGSIZE`: dropped, `too_big += 1` (a GSO send instead falls back, see below).
    /// * `(off, len)` outside `arena`, or any other error: dropped, `other_errors += n`.
    /// * `ENOSYS` from `sendmmsg`: this sender switches to the portable loop for good.
    /// * GSO send failing with `EINVAL`, `EIO` or `EMSGSIZE`: GSO is disabled for this socket
    ///   (`gso_fallbacks += 1`) and the same datagrams are resent through `sendmmsg` (no loss).
    pub fn send_batch(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) -> BatchOutcome {
        self.shared.wb_deadline = None;
        let mut out = BatchOutcome::default();
        let mut start = 0;
        for (i, &(off, len)) in dgrams.iter().enumerate() {
            let end = (off as usize).checked_add(len as usize);
            if end.is_none_or(|e| e > arena.len()) {
                out += self.send_valid(arena, &dgrams[start..i]);
                let err = io::Error::from(io::ErrorKind::InvalidInput);
                self.shared.count_drop(ErrClass::Other, 1, &err);
                out.dropped += 1;
                start = i + 1;
            }
        }
        out += self.send_valid(arena, &dgrams[start..]);
        out
    }

    /// `send_batch` for a slice whose ranges are all inside `arena`.
    fn send_valid(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) -> BatchOutcome {
        if dgrams.is_empty() {
            return BatchOutcome::default();
        }
        match &mut self.backend {
            Backend::Portable => fallback::send(&mut self.shared, arena, dgrams),
            #[cfg(target_os = "linux")]
            Backend::Linux(l) => {
                let (mut out, nosys_at) = l.send(&mut self.shared, arena, dgrams);
                if let Some(k) = nosys_at {
                    self.shared.log.log(
                        LogKind::Other,
                        format_args!("net: sendmmsg unavailable (ENOSYS); using send()"),
                    );
                    self.backend = Backend::Portable;
                    out += fallback::send(&mut self.shared, arena, &dgrams[k..]);
                }
                out
            }
        }
    }

    /// Cumulative counters.
    pub fn stats(&self) -> SendStats {
        self.shared.stats
    }

    /// Test hook (unit tests and feature `test-hooks` only): the next GSO send fails with
    /// `errno` as if the kernel had returned it (the kernel is not called). No effect on the
    /// portable backend or when GSO is off.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn inject_gso_error(&mut self, errno: i32) {
        match &mut self.backend {
            Backend::Portable => {
                let _ = errno;
            }
            #[cfg(target_os = "linux")]
            Backend::Linux(l) => l.inject_gso_error(errno),
        }
    }
}

impl fmt::Debug for UdpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSender")
            .field("dest", &self.shared.dest)
            .field("backend", &self.backend())
            .field("stats", &self.shared.stats)
            .finish()
    }
}

/// Loopback helpers shared by the unit tests of this module tree.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use socket2::SockRef;
    use std::net::UdpSocket;

    /// A receiver on 127.0.0.1:0 with an 8 MiB `SO_RCVBUF` request and a 5 s read timeout.
    /// Returns it and its effective receive buffer.
    pub fn receiver() -> (UdpSocket, usize) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sr = SockRef::from(&rx);
        sr.set_recv_buffer_size(8 << 20).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let eff = sr.recv_buffer_size().unwrap();
        (rx, eff)
    }

    /// Deterministic content: datagram `i` of length `len`.
    pub fn fill(i: usize, buf: &mut [u8]) {
        for (j, b) in buf.iter_mut().enumerate() {
            *b = (i.wrapping_mul(131) ^ j.wrapping_mul(7)) as u8;
        }
        if buf.len() >= 4 {
            buf[..4].copy_from_slice(&(i as u32).to_be_bytes());
        }
    }

    /// Contiguous arena holding datagrams of the given lengths.
    pub fn arena(lens: &[usize]) -> (Vec<u8>, Vec<(u32, u32)>) {
        let mut arena = vec![0u8; lens.iter().sum()];
        let mut dgrams = Vec::with_capacity(lens.len());
        let mut off = 0;
        for (i, &len) in lens.iter().enumerate() {
            fill(i, &mut arena[off..off + len]);
            dgrams.push((off as u32, len as u32));
            off += len;
        }
        (arena, dgrams)
    }

    /// Receives exactly `n` datagrams (5 s timeout each) and checks them against `arena`/`dgrams`.
    pub fn expect(rx: &UdpSocket, arena: &[u8], dgrams: &[(u32, u32)]) {
        let mut buf = vec![0u8; 65_536];
        for (i, &(off, len)) in dgrams.iter().enumerate() {
            let n = rx
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i}/{}: {e}", dgrams.len()));
            let want = &arena[off as usize..(off + len) as usize];
            assert_eq!(n, want.len(), "datagram {i}: length");
            assert!(buf[..n] == *want, "datagram {i}: content");
        }
    }

    /// Sends 1000 datagrams of mixed sizes (100..5000 B) in `send_batch` calls of up to
    /// `BATCH_MAX`, draining the receiver between calls, and checks all arrive intact and in order.
    pub fn mixed_sizes_roundtrip(opts: &SenderOptions, expect_backend: &str) -> SendStats {
        let (rx, rcvbuf) = receiver();
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), opts).unwrap();
        assert_eq!(tx.backend(), expect_backend);
        // xorshift sizes in 100..5000
        let mut s: u32 = 0x9e37_79b9;
        let lens: Vec<usize> = (0..1000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                100 + (s % 4900) as usize
            })
            .collect();
        let (arena, dgrams) = arena(&lens);
        // A 5000-B loopback datagram costs ~9 KB of receive buffer: never queue more than fits.
        let chunk = (rcvbuf / 2 / 10_000).clamp(8, BATCH_MAX);
        for c in dgrams.chunks(chunk) {
            let out = tx.send_batch(&arena, c);
            assert_eq!(
                out,
                BatchOutcome {
                    sent: c.len(),
                    dropped: 0
                }
            );
            expect(&rx, &arena, c);
        }
        let st = tx.stats();
        assert_eq!(st.datagrams_sent, 1000);
        assert_eq!(st.bytes_sent, arena.len() as u64);
        assert_eq!(st.dropped(), 0);
        st
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn sender_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<UdpSender>();
    }

    #[test]
    fn rate_limited_log_one_per_interval_per_kind() {
        let mut log = RateLimitedLog::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(log.admit(LogKind::Refused, t0), Some(0));
        assert_eq!(log.admit(LogKind::Refused, t0), None);
        assert_eq!(
            log.admit(LogKind::Refused, t0 + Duration::from_millis(999)),
            None
        );
        // another kind has its own budget
        assert_eq!(log.admit(LogKind::TooBig, t0), Some(0));
        assert_eq!(
            log.admit(LogKind::Refused, t0 + Duration::from_secs(1)),
            Some(2)
        );
        assert_eq!(
            log.admit(LogKind::Refused, t0 + Duration::from_millis(1500)),
            None
        );
        assert_eq!(
            log.admit(LogKind::Refused, t0 + Duration::from_secs(3)),
            Some(1)
        );
    }

    #[test]
    fn classify_errors() {
        #[cfg(unix)]
        for (errno, class) in [
            (libc::EINTR, ErrClass::Interrupted),
            (libc::EAGAIN, ErrClass::WouldBlock),
            (libc::ECONNREFUSED, ErrClass::Refused),
            (libc::EMSGSIZE, ErrClass::TooBig),
            (libc::ENOSYS, ErrClass::NoSys),
            (libc::EPERM, ErrClass::Other),
        ] {
            assert_eq!(classify(&io::Error::from_raw_os_error(errno)), class);
        }
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::InvalidInput)),
            ErrClass::Other
        );
    }

    #[test]
    fn out_of_arena_ranges_are_dropped_and_the_rest_sent() {
        let (rx, _) = receiver();
        let mut tx =
            UdpSender::connect(rx.local_addr().unwrap(), &SenderOptions::default()).unwrap();
        let (arena, mut dgrams) = arena(&[300, 300, 300]);
        dgrams.insert(1, (u32::MAX, 10));
        dgrams.insert(3, (850, 100)); // past the end (arena is 900 B)
        let out = tx.send_batch(&arena, &dgrams);
        assert_eq!(
            out,
            BatchOutcome {
                sent: 3,
                dropped: 2
            }
        );
        assert_eq!(tx.stats().other_errors, 2);
        expect(&rx, &arena, &[dgrams[0], dgrams[2], dgrams[4]]);
    }

    #[test]
    fn empty_batch_is_a_no_op() {
        let (rx, _) = receiver();
        let mut tx =
            UdpSender::connect(rx.local_addr().unwrap(), &SenderOptions::default()).unwrap();
        assert_eq!(tx.send_batch(&[], &[]), BatchOutcome::default());
        assert_eq!(tx.stats(), SendStats::default());
        assert!(tx.effective_send_buffer() > 0);
        assert!(tx.local_addr().unwrap().port() != 0);
    }

    /// Test 4 of the brief, for every backend: sending to a closed port counts `refused` and
    /// never panics; once a receiver binds that port, datagrams arrive again.
    fn refused_then_receiver_appears(opts: &SenderOptions) {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        }; // closed here
        let dest: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let mut tx = UdpSender::connect(dest, opts).unwrap();
        let (arena, dgrams) = arena(&[200, 200, 200, 200]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut batches = 0u64;
        while tx.stats().refused == 0 {
            assert!(
                Instant::now() < deadline,
                "no ECONNREFUSED after {batches} batches"
            );
            let out = tx.send_batch(&arena, &dgrams);
            assert_eq!(out.sent + out.dropped, dgrams.len());
            batches += 1;
            std::thread::yield_now();
        }
        let before = tx.stats();
        assert!(before.refused > 0);

        let rx = std::net::UdpSocket::bind(dest).expect("rebind the refused port");
        rx.set_nonblocking(true).unwrap();
        // The kernel may still hold one pending ICMP error: send until one datagram arrives.
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline, "nothing arrived after rebinding");
            tx.send_batch(&arena, &dgrams[..1]);
            if let Ok(n) = rx.recv(&mut buf) {
                assert_eq!(n, 200);
                break;
            }
            std::thread::yield_now();
        }
        while rx.recv(&mut buf).is_ok() {} // drain
        rx.set_nonblocking(false).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..10 {
            assert_eq!(tx.send_batch(&arena, &dgrams).sent, dgrams.len());
            expect(&rx, &arena, &dgrams);
        }
        eprintln!(
            "[{}] refused after {batches} batches: {before:?}; after: {:?}",
            tx.backend(),
            tx.stats()
        );
    }

    #[test]
    fn refused_default() {
        refused_then_receiver_appears(&SenderOptions::default());
    }

    #[test]
    fn refused_no_gso() {
        refused_then_receiver_appears(&SenderOptions {
            use_gso: false,
            ..Default::default()
        });
    }

    #[test]
    fn refused_portable() {
        refused_then_receiver_appears(&SenderOptions {
            force_portable: true,
            ..Default::default()
        });
    }

    #[test]
    fn ipv6_loopback_if_available() {
        let Ok(rx) = std::net::UdpSocket::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback: skipped");
            return;
        };
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tx =
            UdpSender::connect(rx.local_addr().unwrap(), &SenderOptions::default()).unwrap();
        assert!(tx.local_addr().unwrap().is_ipv6());
        let (arena, dgrams) = arena(&[1304; 10]);
        assert_eq!(tx.send_batch(&arena, &dgrams).sent, 10);
        expect(&rx, &arena, &dgrams);
    }
}
