//! Linux send path: `sendmmsg(2)` over preallocated `mmsghdr`/`iovec` arrays, and UDP GSO
//! (`UDP_SEGMENT` control message on one `sendmsg`) for runs of equal-size contiguous datagrams.
//!
//! One of the few files with `unsafe` code (README, "Development"); every block states its
//! invariant.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};

use libc::{c_int, c_uint, c_void};
use socket2::Socket;

use super::{
    classify, BatchOutcome, ErrClass, LogKind, Shared, BATCH_MAX, GSO_MAX_BYTES, GSO_MAX_SEGMENTS,
};

/// Room for one `cmsghdr` + `u16` (`CMSG_SPACE(2)` = 24 on 64-bit), aligned like `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 32]);

// SAFETY: CMSG_SPACE is a pure arithmetic macro; evaluated at compile time.
const GSO_CMSG_SPACE: usize = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as c_uint) } as usize;
// SAFETY: as above.
const GSO_CMSG_LEN: usize = unsafe { libc::CMSG_LEN(mem::size_of::<u16>() as c_uint) } as usize;
const _: () = assert!(GSO_CMSG_SPACE <= mem::size_of::<CmsgBuf>());
const _: () = assert!(mem::align_of::<CmsgBuf>() >= mem::align_of::<libc::cmsghdr>());
const _: () = assert!(BATCH_MAX <= 1024, "UIO_MAXIOV");

pub(super) struct LinuxSender {
    /// Capacity `BATCH_MAX`, rebuilt (clear + push, never beyond capacity) for every chunk.
    iovs: Vec<libc::iovec>,
    /// Capacity `BATCH_MAX`; `hdrs[i].msg_hdr.msg_iov == &iovs[i]` while a chunk is being sent.
    hdrs: Vec<libc::mmsghdr>,
    gso: bool,
    /// Test hook: the next GSO send fails with this errno (not in normal builds).
    #[cfg(any(test, feature = "test-hooks"))]
    injected: Option<i32>,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs` are only written and read during one `send` call,
// which rebuilds them first from the borrowed arena; between calls they are stale and never
// dereferenced, so moving the sender to another thread cannot create a data race.
unsafe impl Send for LinuxSender {}

/// What one GSO attempt did.
enum Gso {
    /// Sent, or dropped and counted.
    Done,
    /// The kernel rejected GSO: it is now disabled; resend these datagrams without it.
    Fallback,
}

impl LinuxSender {
    pub(super) fn new(socket: &Socket, use_gso: bool) -> Self {
        LinuxSender {
            iovs: Vec::with_capacity(BATCH_MAX),
            hdrs: Vec::with_capacity(BATCH_MAX),
            gso: use_gso && probe_gso(socket.as_raw_fd()),
            #[cfg(any(test, feature = "test-hooks"))]
            injected: None,
        }
    }

    pub(super) fn gso_enabled(&self) -> bool {
        self.gso
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub(super) fn inject_gso_error(&mut self, errno: i32) {
        self.injected = Some(errno);
    }

    /// Sends `dgrams` (all in bounds of `arena`) in order. Returns the outcome and, if `sendmmsg`
    /// reported `ENOSYS`, the index of the first datagram not handled yet (the caller switches to
    /// the portable loop and sends `dgrams[k..]` there).
    pub(super) fn send(
        &mut self,
        sh: &mut Shared,
        arena: &[u8],
        dgrams: &[(u32, u32)],
    ) -> (BatchOutcome, Option<usize>) {
        let mut out = BatchOutcome::default();
        let n = dgrams.len();
        let mut i = 0;
        while i < n {
            if self.gso {
                let run = gso_run_len(dgrams, i);
                if run >= 2 {
                    match self.send_gso(sh, arena, &dgrams[i..i + run], &mut out) {
                        Gso::Done => {
                            i += run;
                            continue;
                        }
                        Gso::Fallback => {} // GSO is now off: sendmmsg below covers this run
                    }
                }
            }
            // A stretch for sendmmsg: up to the next GSO run (if GSO is on), at most BATCH_MAX.
            let mut end = (i + BATCH_MAX).min(n);
            if self.gso {
                let mut k = i + 1;
                while k < end && gso_run_len(dgrams, k) < 2 {
                    k += 1;
                }
                end = k;
            }
            if let Some(k) = self.send_mmsg(sh, arena, &dgrams[i..end], &mut out) {
                return (out, Some(i + k));
            }
            i = end;
        }
        (out, None)
    }

    /// One `sendmmsg` chunk (`chunk.len() <= BATCH_MAX`). Returns `Some(k)` on `ENOSYS` with
    /// `chunk[k..]` unsent and uncounted.
    fn send_mmsg(
        &mut self,
        sh: &mut Shared,
        arena: &[u8],
        chunk: &[(u32, u32)],
        out: &mut BatchOutcome,
    ) -> Option<usize> {
        debug_assert!(chunk.len() <= BATCH_MAX);
        self.iovs.clear();
        self.hdrs.clear();
        for &(off, len) in chunk {
            let d = &arena[off as usize..off as usize + len as usize];
            self.iovs.push(libc::iovec {
                iov_base: d.as_ptr() as *mut c_void,
                iov_len: d.len(),
            });
        }
        // `iovs` is complete and is not pushed to again, so pointers into it stay valid.
        for iov in self.iovs.iter_mut() {
            // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers; all-zero is a
            // valid value (null name/control, no iovecs).
            let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        let fd = sh.socket.as_raw_fd();
        let total = self.hdrs.len();
        let mut pos = 0;
        while pos < total {
            sh.stats.syscalls += 1;
            // SAFETY: `hdrs[pos..total]` are initialised; each points (msg_iov, msg_iovlen = 1) at
            // an element of `iovs`, which is neither moved nor resized until this function returns,
            // and each iovec describes a sub-slice of `arena`, borrowed for this whole call. The
            // socket is connected, so msg_name is null. vlen <= BATCH_MAX <= UIO_MAXIOV. The
            // kernel only writes the `msg_len` fields of the headers it sent.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr().add(pos),
                    (total - pos) as c_uint,
                    0,
                )
            };
            if r > 0 {
                let r = r as usize;
                for h in &self.hdrs[pos..pos + r] {
                    sh.stats.bytes_sent += u64::from(h.msg_len);
                }
                sh.stats.datagrams_sent += r as u64;
                out.sent += r;
                pos += r;
                continue;
            }
            let err = if r == 0 {
                // Cannot happen for vlen > 0; never loop on it.
                io::Error::from(io::ErrorKind::WriteZero)
            } else {
                io::Error::last_os_error()
            };
            match classify(&err) {
                ErrClass::Interrupted => continue,
                ErrClass::WouldBlock if sh.wait_would_block() => continue,
                ErrClass::NoSys => return Some(pos),
                class => {
                    sh.count_drop(class, 1, &err);
                    out.dropped += 1;
                    pos += 1;
                }
            }
        }
        None
    }

    /// One GSO `sendmsg` for `run` (2..=64 contiguous datagrams, all of `run[0].1` bytes but the
    /// last, which may be shorter; at most `GSO_MAX_BYTES` in total).
    fn send_gso(
        &mut self,
        sh: &mut Shared,
        arena: &[u8],
        run: &[(u32, u32)],
        out: &mut BatchOutcome,
    ) -> Gso {
        let start = run[0].0 as usize;
        let (last_off, last_len) = run[run.len() - 1];
        let buf = &arena[start..last_off as usize + last_len as usize];
        let seg = run[0].1 as u16; // gso_run_len guarantees <= GSO_MAX_BYTES < u16::MAX
        let fd = sh.socket.as_raw_fd();
        loop {
            #[cfg(any(test, feature = "test-hooks"))]
            let injected = self.injected.take();
            #[cfg(not(any(test, feature = "test-hooks")))]
            let injected: Option<i32> = None;
            let res = match injected {
                Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                None => {
                    sh.stats.syscalls += 1;
                    sendmsg_gso(fd, buf, seg)
                }
            };
            let err = match res {
                Ok(_) => {
                    sh.stats.datagrams_sent += run.len() as u64;
                    sh.stats.bytes_sent += buf.len() as u64;
                    sh.stats.gso_batches += 1;
                    out.sent += run.len();
                    return Gso::Done;
                }
                Err(e) => e,
            };
            let errno = err.raw_os_error().unwrap_or(0);
            if matches!(errno, libc::EINVAL | libc::EIO | libc::EMSGSIZE) {
                self.gso = false;
                sh.stats.gso_fallbacks += 1;
                log_gso_fallback(sh, errno);
                return Gso::Fallback;
            }
            match classify(&err) {
                ErrClass::Interrupted => continue,
                ErrClass::WouldBlock if sh.wait_would_block() => continue,
                // ECONNREFUSED: the whole super-buffer was not sent; all of it counts as refused.
                class => {
                    sh.count_drop(class, run.len(), &err);
                    out.dropped += run.len();
                    return Gso::Done;
                }
            }
        }
    }
}

fn log_gso_fallback(sh: &mut Shared, errno: i32) {
    let dest = sh.dest;
    let err = io::Error::from_raw_os_error(errno);
    sh.log.log(
        LogKind::GsoFallback,
        format_args!("net: UDP GSO to {dest} rejected ({err}); using sendmmsg from now on"),
    );
}

/// Length of the GSO run starting at `dgrams[i]`: consecutive datagrams contiguous in the arena,
/// all of the first one's length except the last (which may be shorter), at most
/// `GSO_MAX_SEGMENTS` of them and `GSO_MAX_BYTES` in total. 1 means "no run".
fn gso_run_len(dgrams: &[(u32, u32)], i: usize) -> usize {
    let (off0, seg) = dgrams[i];
    let seg = seg as usize;
    if seg == 0 || seg > GSO_MAX_BYTES / 2 {
        return 1;
    }
    let mut next = off0 as usize + seg;
    let mut total = seg;
    let mut k = i + 1;
    while k < dgrams.len() && k - i < GSO_MAX_SEGMENTS {
        let (off, len) = dgrams[k];
        let len = len as usize;
        if off as usize != next || len == 0 || len > seg || total + len > GSO_MAX_BYTES {
            break;
        }
        total += len;
        next += len;
        k += 1;
        if len < seg {
            break; // a shorter datagram ends the run
        }
    }
    k - i
}

/// `sendmsg(fd, buf, UDP_SEGMENT = seg)` on a connected socket.
fn sendmsg_gso(fd: RawFd, buf: &[u8], seg: u16) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut c_void,
        iov_len: buf.len(),
    };
    let mut cmsg_buf = CmsgBuf([0; 32]);
    // SAFETY: `msghdr` is a plain C struct; all-zero is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.0.as_mut_ptr().cast();
    msg.msg_controllen = GSO_CMSG_SPACE as _;
    // SAFETY: msg_control points at `cmsg_buf`, which is aligned for `cmsghdr` and at least
    // msg_controllen = CMSG_SPACE(2) bytes long (checked at compile time), so CMSG_FIRSTHDR returns
    // a non-null, aligned pointer into it with room for the header and CMSG_DATA for a u16
    // (written unaligned, as the data need not be u16-aligned in general).
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        debug_assert!(!c.is_null());
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = GSO_CMSG_LEN as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
    }
    // SAFETY: `msg` is fully initialised; its iovec points at `buf` and its control pointer at
    // `cmsg_buf`, both alive and unmoved for the duration of the call. msg_name is null because
    // the socket is connected. The kernel only reads these buffers.
    let r = unsafe { libc::sendmsg(fd, &msg, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `setsockopt(SOL_UDP, UDP_SEGMENT, 1500)` then back to 0 (so GSO only applies per message via
/// cmsg), as quinn-udp does. Fails with `ENOPROTOOPT` on kernels before 4.18.
fn probe_gso(fd: RawFd) -> bool {
    set_udp_segment(fd, 1500) && set_udp_segment(fd, 0)
}

fn set_udp_segment(fd: RawFd, val: c_int) -> bool {
    // SAFETY: optval points at a live c_int and optlen is its size; the kernel copies it in.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&val as *const c_int).cast(),
            mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::gso_run_len;
    use std::time::Instant;

    /// Whether `tx` uses GSO. A kernel without UDP GSO fails the GSO tests unless
    /// `ZMQ2OSC_ALLOW_NO_GSO=1` opts out explicitly (then the test says so and skips its
    /// GSO assertions).
    fn gso_on(tx: &UdpSender, test: &str) -> bool {
        if tx.backend() == "sendmmsg+gso" {
            return true;
        }
        if std::env::var("ZMQ2OSC_ALLOW_NO_GSO").as_deref() == Ok("1") {
            eprintln!(
                "{test}: UDP GSO not available here (backend {}); ZMQ2OSC_ALLOW_NO_GSO=1 is set, \
                 so the GSO assertions are SKIPPED",
                tx.backend()
            );
            return false;
        }
        panic!(
            "{test}: UDP GSO not available (backend {}); this test needs it. Set \
             ZMQ2OSC_ALLOW_NO_GSO=1 to run without GSO and skip the GSO assertions",
            tx.backend()
        );
    }

    fn no_gso() -> SenderOptions {
        SenderOptions {
            use_gso: false,
            ..Default::default()
        }
    }

    /// Test 1: sendmmsg, 1000 mixed-size datagrams arrive intact and in order.
    #[test]
    fn sendmmsg_mixed_sizes_arrive_intact_in_order() {
        let st = mixed_sizes_roundtrip(&no_gso(), "sendmmsg");
        assert!(st.syscalls < 1000, "sendmmsg should batch: {st:?}");
        assert_eq!(st.gso_batches, 0);
    }

    /// Test 1 again with GSO on: mixed sizes give (almost) no runs, so sendmmsg carries them.
    #[test]
    fn mixed_sizes_with_gso_enabled() {
        let probe =
            UdpSender::connect("127.0.0.1:9".parse().unwrap(), &Default::default()).unwrap();
        let expect_backend = probe.backend();
        mixed_sizes_roundtrip(&SenderOptions::default(), expect_backend);
    }

    /// Test 2: 200 equal 1304-B datagrams go out as GSO super-buffers and arrive as 200 datagrams.
    #[test]
    fn gso_equal_sizes_arrive_as_separate_datagrams() {
        let (rx, _) = receiver();
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &Default::default()).unwrap();
        let (arena, dgrams) = arena(&[1304; 200]);
        let out = tx.send_batch(&arena, &dgrams);
        assert_eq!(
            out,
            BatchOutcome {
                sent: 200,
                dropped: 0
            }
        );
        expect(&rx, &arena, &dgrams);
        let st = tx.stats();
        assert_eq!(st.datagrams_sent, 200);
        assert_eq!(st.bytes_sent, 200 * 1304);
        if gso_on(&tx, "gso_equal_sizes_arrive_as_separate_datagrams") {
            assert!(st.gso_batches > 0, "{st:?}");
            // 65 507 / 1304 = 50 per super-buffer: 50+50+50+50
            assert_eq!(st.gso_batches, 4, "{st:?}");
            assert_eq!(st.syscalls, 4, "{st:?}");
        }
    }

    /// `gso_run` tells the super-buffer length the sender really uses.
    #[test]
    fn gso_run_is_the_super_buffer_length() {
        let (rx, _) = receiver();
        let tx = UdpSender::connect(rx.local_addr().unwrap(), &no_gso()).unwrap();
        assert_eq!(tx.gso_run(1304), 1);
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &Default::default()).unwrap();
        if gso_on(&tx, "gso_run_is_the_super_buffer_length") {
            assert_eq!(tx.gso_run(1304), 50);
            assert_eq!(tx.gso_run(5144), 12);
            assert_eq!(tx.gso_run(64), GSO_MAX_SEGMENTS);
            assert_eq!(tx.gso_run(65_507), 1);
            // 3 runs of 50, then what the sender did with them.
            let (arena, dgrams) = arena(&[1304; 150]);
            tx.send_batch(&arena, &dgrams);
            expect(&rx, &arena, &dgrams);
            assert_eq!(tx.stats().gso_batches, 3);
        }
    }

    /// GSO with a shorter last segment, a non-contiguous gap and singles in between.
    #[test]
    fn gso_runs_mixed_with_singles_and_gaps() {
        let (rx, _) = receiver();
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &Default::default()).unwrap();
        let lens = [
            1304, 1304, 1304, 700, 900, 1304, 1304, 1304, 1304, 1304, 100, 1304,
        ];
        let (mut arena, mut dgrams) = arena(&lens);
        // move datagram 7 to the end of the arena: breaks contiguity of the second run
        let (o, l) = dgrams[7];
        let copy = arena[o as usize..(o + l) as usize].to_vec();
        dgrams[7] = (arena.len() as u32, l);
        arena.extend_from_slice(&copy);
        let out = tx.send_batch(&arena, &dgrams);
        assert_eq!(out.sent, lens.len());
        expect(&rx, &arena, &dgrams);
        if gso_on(&tx, "gso_runs_mixed_with_singles_and_gaps") {
            // runs: [0..4) (3×1304 + 700), [5..7), [8..10) + 100 → 3 GSO sends
            assert_eq!(tx.stats().gso_batches, 3, "{:?}", tx.stats());
        }
    }

    /// Test 3: an injected EINVAL disables GSO once and loses nothing.
    #[test]
    fn gso_fallback_on_einval_loses_nothing() {
        let (rx, _) = receiver();
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &Default::default()).unwrap();
        if !gso_on(&tx, "gso_fallback_on_einval_loses_nothing") {
            return;
        }
        let (arena, dgrams) = arena(&[1304; 100]);
        tx.inject_gso_error(libc::EINVAL);
        let out = tx.send_batch(&arena, &dgrams);
        assert_eq!(
            out,
            BatchOutcome {
                sent: 100,
                dropped: 0
            }
        );
        expect(&rx, &arena, &dgrams);
        let st = tx.stats();
        assert_eq!(st.gso_fallbacks, 1);
        assert_eq!(st.gso_batches, 0);
        assert_eq!(tx.backend(), "sendmmsg");
        // later sends use sendmmsg: 100 datagrams in one call, no GSO
        assert_eq!(tx.send_batch(&arena, &dgrams).sent, 100);
        expect(&rx, &arena, &dgrams);
        let st2 = tx.stats();
        assert_eq!(st2.gso_batches, 0);
        assert_eq!(st2.gso_fallbacks, 1);
        assert_eq!(st2.syscalls - st.syscalls, 1, "{st2:?}");
    }

    #[test]
    fn gso_fallback_on_eio_and_emsgsize() {
        for errno in [libc::EIO, libc::EMSGSIZE] {
            let (rx, _) = receiver();
            let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &Default::default()).unwrap();
            if !gso_on(&tx, "gso_fallback_on_eio_and_emsgsize") {
                return;
            }
            let (arena, dgrams) = arena(&[1000; 30]);
            // first a GSO send that works, then the injected failure
            assert_eq!(tx.send_batch(&arena, &dgrams).sent, 30);
            tx.inject_gso_error(errno);
            assert_eq!(tx.send_batch(&arena, &dgrams).sent, 30);
            expect(&rx, &arena, &dgrams);
            expect(&rx, &arena, &dgrams);
            let st = tx.stats();
            assert_eq!((st.gso_batches, st.gso_fallbacks), (1, 1), "{st:?}");
            assert_eq!(st.dropped(), 0);
            assert_eq!(tx.backend(), "sendmmsg");
        }
    }

    /// Other injected errors on a GSO send drop the super-buffer, count it, and keep GSO on.
    #[test]
    fn gso_other_errors_drop_and_count_the_run() {
        let (rx, _) = receiver();
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &Default::default()).unwrap();
        if !gso_on(&tx, "gso_other_errors_drop_and_count_the_run") {
            return;
        }
        let (arena, dgrams) = arena(&[500; 10]);
        tx.inject_gso_error(libc::ECONNREFUSED);
        assert_eq!(
            tx.send_batch(&arena, &dgrams),
            BatchOutcome {
                sent: 0,
                dropped: 10
            }
        );
        tx.inject_gso_error(libc::EPERM);
        assert_eq!(
            tx.send_batch(&arena, &dgrams),
            BatchOutcome {
                sent: 0,
                dropped: 10
            }
        );
        tx.inject_gso_error(libc::EINTR); // retried
        assert_eq!(tx.send_batch(&arena, &dgrams).sent, 10);
        expect(&rx, &arena, &dgrams);
        let st = tx.stats();
        assert_eq!((st.refused, st.other_errors, st.gso_fallbacks), (10, 10, 0));
        assert_eq!(tx.backend(), "sendmmsg+gso");
    }

    /// EAGAIN on a GSO send is retried (within the budget) rather than dropped.
    #[test]
    fn gso_would_block_is_retried() {
        let (rx, _) = receiver();
        let opts = SenderOptions {
            would_block_retry: Duration::from_millis(20),
            ..Default::default()
        };
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &opts).unwrap();
        if !gso_on(&tx, "gso_would_block_is_retried") {
            return;
        }
        let (arena, dgrams) = arena(&[500; 10]);
        // a single injected EAGAIN: retried, then the real send succeeds
        tx.inject_gso_error(libc::EAGAIN);
        let t = Instant::now();
        assert_eq!(tx.send_batch(&arena, &dgrams).sent, 10);
        assert!(t.elapsed() < Duration::from_secs(1));
        expect(&rx, &arena, &dgrams);
        assert_eq!(tx.stats().would_block_dropped, 0);
    }

    #[test]
    fn oversized_datagram_is_too_big_and_rest_goes_out() {
        let (rx, _) = receiver();
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &no_gso()).unwrap();
        let (arena, dgrams) = arena(&[100, 70_000, 100]);
        let out = tx.send_batch(&arena, &dgrams);
        assert_eq!(
            out,
            BatchOutcome {
                sent: 2,
                dropped: 1
            }
        );
        assert_eq!(tx.stats().too_big, 1);
        expect(&rx, &arena, &[dgrams[0], dgrams[2]]);
    }

    #[test]
    fn more_than_batch_max_per_call() {
        let (rx, rcvbuf) = receiver();
        assert!(rcvbuf >= 4 << 20, "rcvbuf {rcvbuf}");
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &no_gso()).unwrap();
        let (arena, dgrams) = arena(&[200; 600]);
        assert_eq!(tx.send_batch(&arena, &dgrams).sent, 600);
        expect(&rx, &arena, &dgrams);
        assert!(tx.stats().syscalls >= 3);
    }

    #[test]
    fn run_detection() {
        let d = |v: &[(u32, u32)]| v.to_vec();
        let eq = d(&[(0, 10), (10, 10), (20, 10), (30, 5), (35, 5)]);
        assert_eq!(gso_run_len(&eq, 0), 4); // shorter last ends the run
        assert_eq!(gso_run_len(&eq, 3), 2);
        assert_eq!(gso_run_len(&eq, 4), 1);
        let gap = d(&[(0, 10), (11, 10)]);
        assert_eq!(gso_run_len(&gap, 0), 1);
        let longer = d(&[(0, 10), (10, 11)]);
        assert_eq!(gso_run_len(&longer, 0), 1);
        let many: Vec<(u32, u32)> = (0..200).map(|i| (i * 100, 100)).collect();
        assert_eq!(gso_run_len(&many, 0), GSO_MAX_SEGMENTS);
        let big: Vec<(u32, u32)> = (0..200).map(|i| (i * 1304, 1304)).collect();
        assert_eq!(gso_run_len(&big, 0), GSO_MAX_BYTES / 1304);
        let zero = d(&[(0, 0), (0, 0)]);
        assert_eq!(gso_run_len(&zero, 0), 1);
    }
}
