//! The receive loops (`recvmmsg` on Linux, the only `unsafe` of the sink).

use super::*;
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub(super) fn run(sock: UdpSocket, shared: &Shared, stop: &AtomicBool) {
    #[cfg(target_os = "linux")]
    {
        let ino = linux::socket_inode(&sock);
        linux::recv_loop(&sock, shared, stop);
        let cpu = linux::thread_cpu_ns();
        let mut g = shared.lock();
        g.report.thread_cpu_ns = cpu;
        if let Some(d) = ino.and_then(linux::proc_udp_drops) {
            g.report.kernel_drops = g.report.kernel_drops.max(d);
        }
    }
    #[cfg(not(target_os = "linux"))]
    recv_loop_portable(&sock, shared, stop);
    shared.cond.notify_all();
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(not(target_os = "linux"))]
pub(super) fn recv_loop_portable(sock: &UdpSocket, shared: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let now = Instant::now();
                shared.lock().handle_datagram(&buf[..n], false, now);
                shared.cond.notify_all();
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[cfg(target_os = "linux")]
pub(super) mod linux {
    use super::*;
    use std::os::fd::AsRawFd;

    const BATCH: usize = 64;
    const BUF: usize = 64 * 1024;
    const CTRL_WORDS: usize = 8; // 64 bytes of control data per message

    /// Sets the receive buffer with `SO_RCVBUFFORCE`, which may exceed `net.core.rmem_max`
    /// (needs `CAP_NET_ADMIN`, e.g. root). False when refused: the caller falls back to
    /// `SO_RCVBUF` (capped at `rmem_max`).
    pub(crate) fn force_recv_buffer(sock: &socket2::Socket, bytes: usize) -> bool {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: `sock` is an open socket for the duration of the call; the option value
        // points to a live c_int whose size is passed as the length.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    /// CPU time (ns) of the calling thread.
    pub(crate) fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec owned by this frame; clock_gettime
        // writes only into it.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
        } else {
            0
        }
    }

    /// Asks the kernel to attach the socket's drop counter to received messages.
    pub(crate) fn enable_rxq_ovfl(sock: &socket2::Socket) {
        let one: libc::c_int = 1;
        // SAFETY: `sock` is an open socket for the duration of the call; the option value
        // points to a live c_int whose size is passed as the length.
        let _ = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RXQ_OVFL,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    /// Inode of the socket (for /proc/net/udp), via /proc/self/fd.
    pub(crate) fn socket_inode(sock: &UdpSocket) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd()))
            .ok()
            .map(|m| m.ino())
    }

    /// The `drops` column of /proc/net/udp{,6} for the socket with inode `ino`.
    pub(crate) fn proc_udp_drops(ino: u64) -> Option<u64> {
        for path in ["/proc/net/udp", "/proc/net/udp6"] {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() >= 13 && cols[9].parse::<u64>().ok() == Some(ino) {
                    return cols[12].parse().ok();
                }
            }
        }
        None
    }

    pub(crate) fn recv_loop(sock: &UdpSocket, shared: &Shared, stop: &AtomicBool) {
        let fd = sock.as_raw_fd();
        let mut bufs = vec![0u8; BATCH * BUF];
        let mut ctrl = vec![0u64; BATCH * CTRL_WORDS];
        let mut iovs: Vec<libc::iovec> = (0..BATCH)
            .map(|_| libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = (0..BATCH)
            // SAFETY: mmsghdr is a plain C struct of integers and raw pointers, for which the
            // all-zero bit pattern is valid (null pointers, zero lengths).
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        while !stop.load(Ordering::Acquire) {
            // Re-derive all pointers each round so they are fresh when the kernel writes.
            let bp = bufs.as_mut_ptr();
            for (i, iov) in iovs.iter_mut().enumerate() {
                iov.iov_base = bp.wrapping_add(i * BUF).cast();
                iov.iov_len = BUF;
            }
            let ip = iovs.as_mut_ptr();
            let cp = ctrl.as_mut_ptr();
            for (i, h) in hdrs.iter_mut().enumerate() {
                h.msg_len = 0;
                h.msg_hdr.msg_name = std::ptr::null_mut();
                h.msg_hdr.msg_namelen = 0;
                h.msg_hdr.msg_iov = ip.wrapping_add(i);
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = cp.wrapping_add(i * CTRL_WORDS).cast();
                h.msg_hdr.msg_controllen = (CTRL_WORDS * 8) as _;
                h.msg_hdr.msg_flags = 0;
            }
            // SAFETY: `hdrs` holds BATCH valid mmsghdr; each points to one iovec describing a
            // distinct, live BUF-byte region of `bufs` and to a distinct live 64-byte region of
            // `ctrl`. None of these vectors is touched or moved during the call. The timeout
            // pointer is null (SO_RCVTIMEO bounds the wait for the first message).
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            let now = Instant::now();
            if n < 0 {
                let e = io::Error::last_os_error();
                if !is_timeout(&e) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            let n = (n as usize).min(BATCH);
            let mut drops: Option<u64> = None;
            for h in &hdrs[..n] {
                // SAFETY: the kernel filled msg_control/msg_controllen of this header; the CMSG
                // macros only walk within [msg_control, msg_control + msg_controllen), which
                // lies inside `ctrl`; the data is read unaligned after checking its length.
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    while !c.is_null() {
                        if (*c).cmsg_level == libc::SOL_SOCKET
                            && (*c).cmsg_type == libc::SO_RXQ_OVFL
                            && (*c).cmsg_len as usize >= libc::CMSG_LEN(4) as usize
                        {
                            let d = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>());
                            drops = Some(drops.unwrap_or(0).max(u64::from(d)));
                        }
                        c = libc::CMSG_NXTHDR(&h.msg_hdr, c);
                    }
                }
            }
            let mut g = shared.lock();
            g.report.recv_calls += 1;
            if n == BATCH {
                g.report.full_batches += 1;
            }
            for (i, h) in hdrs[..n].iter().enumerate() {
                let len = (h.msg_len as usize).min(BUF);
                let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                g.handle_datagram(&bufs[i * BUF..i * BUF + len], truncated, now);
            }
            if let Some(d) = drops {
                g.report.kernel_drops = g.report.kernel_drops.max(d);
            }
            drop(g);
            shared.cond.notify_all();
        }
    }
}
