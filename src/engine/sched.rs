//! Real-time scheduling for the hot threads (`performance.realtime_priority`), so that a thread
//! woken by data wins the CPU from a busy publisher on the same cores instead of waiting for a
//! time slice (issue: the GUI needs a whole core of its own on a 2-core machine).
//!
//! Linux only: `SCHED_FIFO` at the configured priority through `sched_setscheduler`, for the
//! calling thread ([`set_current`]) or another thread of this process by its kernel tid
//! ([`set_thread`]; that is how libzmq's own I/O and reaper threads are reached: libzmq starts
//! them itself with the first socket, so they are found in `/proc/self/task` as the threads that
//! appeared then, named `ZMQbg/…` by a libzmq that names its threads, or carrying the creating
//! thread's name by one that does not, like the vendored build here). Every call's result is
//! reported; without the privilege (`CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` at least the
//! priority) the answer names what is missing and the thread keeps the normal scheduler.
//! The kernel's real-time throttling (`sched_rt_runtime_us`, 95 % by default) still leaves the
//! rest of the machine some time even if a real-time thread misbehaves, and the hot threads
//! spin only briefly before they park.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;

/// What a scheduling call did to one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedOutcome {
    /// Thread name.
    pub thread: String,
    /// `SCHED_FIFO` at the priority is in force.
    pub ok: bool,
    /// Why not (empty when `ok`).
    pub why: String,
}

fn explain(e: &io::Error, prio: u8) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => format!(
            "not permitted: SCHED_FIFO {prio} needs CAP_SYS_NICE (root) or `ulimit -r {prio}` \
             (RLIMIT_RTPRIO); running with the normal scheduler"
        ),
        Some(libc::EINVAL) => format!("priority {prio} rejected by the kernel (EINVAL)"),
        Some(libc::ESRCH) => "the thread is gone".to_string(),
        _ => e.to_string(),
    }
}

/// `SCHED_FIFO` at `prio` (1..=99) for the kernel thread `tid` (0 = the calling thread).
#[cfg(target_os = "linux")]
fn fifo(tid: libc::pid_t, prio: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(prio),
    };
    // SAFETY: `param` is a valid, initialised sched_param that outlives the call; the kernel
    // only reads it. A wrong tid is an error return (ESRCH), not undefined behaviour.
    let rc = unsafe { libc::sched_setscheduler(tid, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn fifo(_tid: i32, _prio: u8) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "real-time scheduling is implemented for Linux only",
    ))
}

/// The scheduling policy of kernel thread `tid` (0 = calling thread), e.g. `libc::SCHED_FIFO`.
#[cfg(target_os = "linux")]
pub fn policy_of(tid: i32) -> io::Result<i32> {
    // SAFETY: plain syscall wrapper with an integer argument.
    let p = unsafe { libc::sched_getscheduler(tid) };
    if p < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(p)
    }
}

/// Puts the calling thread on `SCHED_FIFO` at `prio`.
pub fn set_current(name: &str, prio: u8) -> SchedOutcome {
    outcome(name, prio, fifo(0, prio))
}

/// Puts thread `tid` of this process on `SCHED_FIFO` at `prio`.
pub fn set_thread(name: &str, tid: i32, prio: u8) -> SchedOutcome {
    outcome(name, prio, fifo(tid, prio))
}

fn outcome(name: &str, prio: u8, r: io::Result<()>) -> SchedOutcome {
    SchedOutcome {
        thread: name.to_string(),
        ok: r.is_ok(),
        why: r.err().map(|e| explain(&e, prio)).unwrap_or_default(),
    }
}

/// Threads of this process whose name starts with `prefix`: (kernel tid, name).
pub fn threads_named(prefix: &str) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut v: Vec<(i32, String)> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let name = name.trim_end().to_string();
            name.starts_with(prefix).then_some((tid, name))
        })
        .collect();
    v.sort();
    v
}

/// Threads that are not in `before` and carry the calling thread's name: the threads a library
/// started from this thread without naming them (libzmq's I/O and reaper threads inherit the
/// name of the thread that created the first socket).
pub fn new_threads_like_current(before: &[(i32, String)]) -> Vec<i32> {
    let me = std::fs::read_to_string("/proc/thread-self/comm")
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default();
    threads_named("")
        .into_iter()
        .filter(|(tid, name)| {
            (*name == me || name.starts_with("ZMQbg/")) && !before.iter().any(|(b, _)| b == tid)
        })
        .map(|(tid, _)| tid)
        .collect()
}

/// Whether `SCHED_FIFO` at `prio` should be granted to this process: effective uid 0, or an
/// `RLIMIT_RTPRIO` soft limit of at least `prio` (a process with only `CAP_SYS_NICE` is not
/// recognised here: the tests that use this then expect a refusal).
#[cfg(target_os = "linux")]
pub fn fifo_permitted(prio: u8) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut lim) };
    // SAFETY: geteuid has no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root || (rc == 0 && lim.rlim_cur >= libc::rlim_t::from(prio))
}

/// The kernel tid of the calling thread.
#[cfg(target_os = "linux")]
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn privileged() -> bool {
        fifo_permitted(5)
    }

    #[test]
    fn a_thread_gets_fifo_or_a_clear_reason() {
        let h = std::thread::Builder::new()
            .name("sched_test".into())
            .spawn(|| {
                let o = set_current("sched_test", 5);
                (o, policy_of(0).unwrap())
            })
            .unwrap();
        let (o, policy) = h.join().unwrap();
        if privileged() {
            assert!(o.ok, "{o:?}");
            assert_eq!(policy, libc::SCHED_FIFO);
        } else {
            assert!(!o.ok);
            assert!(o.why.contains("not permitted"), "{o:?}");
            assert_eq!(policy, libc::SCHED_OTHER);
        }
    }

    #[test]
    fn another_thread_by_name() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::Builder::new()
            .name("sched_other".into())
            .spawn(move || {
                tx.send(current_tid()).unwrap();
                let _ = done_rx.recv();
                policy_of(0).unwrap()
            })
            .unwrap();
        let tid = rx.recv().unwrap();
        let found = threads_named("sched_other");
        assert_eq!(found, vec![(tid, "sched_other".to_string())]);
        let o = set_thread("sched_other", tid, 3);
        done_tx.send(()).unwrap();
        let policy = h.join().unwrap();
        assert_eq!(o.ok, privileged(), "{o:?}");
        assert_eq!(
            policy,
            if privileged() {
                libc::SCHED_FIFO
            } else {
                libc::SCHED_OTHER
            }
        );
        // A thread that is gone is an error with a reason, not a panic.
        let gone = set_thread("gone", i32::MAX, 3);
        assert!(!gone.ok && !gone.why.is_empty());
    }
}
