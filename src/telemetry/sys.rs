//! Small OS helpers for telemetry readers: thread CPU time, clock ticks, terminal size and an
//! async-signal-safe write (`unsafe` FFI calls, each block with its `SAFETY` comment).
#![allow(unsafe_code)]

use std::time::Duration;

/// CPU time consumed by the calling thread (`None` where unsupported).
pub fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec that outlives the call;
        // CLOCK_THREAD_CPUTIME_ID only reads the calling thread's accounting.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/<pid>/stat` times (100 when unknown).
pub fn clock_ticks_per_second() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions; it only returns a value.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            return t as u64;
        }
    }
    100
}

/// (columns, rows) of the terminal on stdout (`None` if stdout is not a terminal).
pub fn terminal_size() -> Option<(usize, usize)> {
    #[cfg(unix)]
    {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the valid, writable `ws`; fd 1 may
        // be anything, in which case the call fails and `ws` is not used.
        let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
        (rc == 0 && ws.ws_col > 0 && ws.ws_row > 0)
            .then_some((ws.ws_col as usize, ws.ws_row as usize))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Writes `bytes` to fd 1 with `write(2)` only (async-signal-safe; best effort).
pub fn raw_write_stdout(bytes: &[u8]) {
    #[cfg(unix)]
    {
        // SAFETY: the pointer and length describe a live slice for the whole call;
        // write(2) is async-signal-safe and a failure is ignored on purpose.
        let _ = unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
    }
    #[cfg(not(unix))]
    {
        let _ = bytes;
    }
}
