//! CPU clocks, `/proc` sampling and SIGTERM to the bridge (the only `unsafe` of the stress tool).

use crate::stress::calc;
use std::collections::BTreeSet;
use std::fs;
use std::time::Instant;

/// CPU time (ns) of a Linux CPU-time clock id.
pub fn clock_ns(clk: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame; clock_gettime writes only
    // into it and reports an invalid clock id (e.g. an exited process) as an error.
    let rc = unsafe { libc::clock_gettime(clk, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time of the calling thread (ns).
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

/// The CPU-time clock of a whole process (Linux `MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`,
/// what `clock_getcpuclockid` returns): all its threads, ns resolution.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    clock_ns(((!(pid as libc::clockid_t)) << 3) | 2)
}

/// The CPU-time clock of a thread of this process (`MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`).
pub fn own_thread_cpu_ns(tid: u32) -> Option<u64> {
    clock_ns(((!(tid as libc::clockid_t)) << 3) | 6)
}

pub fn own_tids() -> BTreeSet<u32> {
    fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn clk_tck() -> f64 {
    // SAFETY: sysconf only reads a system constant; it has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    /// Whole-process CPU (ns, process CPU clock).
    pub cpu_ns: u64,
    /// CPU ticks of the `zmq_rx` thread and of all `osc_tx_*` threads.
    pub rx_ticks: u64,
    pub tx_ticks: u64,
    /// CPU (ns) of this process at the same instant: the instrument (simulator with its
    /// libzmq threads, sink, and the `--contend` burner when on).
    pub own_cpu_ns: u64,
    pub rss_kb: u64,
    pub fds: u64,
    pub threads: u64,
}

pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let at = Instant::now();
    let cpu_ns = process_cpu_ns(pid)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let (mut rx_ticks, mut tx_ticks) = (0, 0);
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let Ok(st) = fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            let (Some(a), Some(b)) = (st.find('('), st.rfind(')')) else {
                continue;
            };
            let comm = &st[a + 1..b];
            let f: Vec<&str> = st[b + 1..].split_whitespace().collect();
            // After the comm: utime (field 14) is f[11], stime (15) is f[12].
            let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if comm == "zmq_rx" {
                rx_ticks += ticks;
            } else if comm.starts_with("osc_tx") {
                tx_ticks += ticks;
            }
        }
    }
    Some(ProcSample {
        at,
        cpu_ns,
        rx_ticks,
        tx_ticks,
        own_cpu_ns: process_cpu_ns(std::process::id()).unwrap_or(0),
        rss_kb: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
    })
}

/// The first sample at or after `from` and the last at or before `to` (NaN window when fewer
/// than two samples fall inside).
pub fn window(
    samples: &[ProcSample],
    from: Instant,
    to: Instant,
) -> Option<(ProcSample, ProcSample)> {
    let a = samples.iter().find(|s| s.at >= from)?;
    let b = samples.iter().rev().find(|s| s.at <= to)?;
    (b.at > a.at).then_some((*a, *b))
}

/// % of one core between two samples for the quantity `pick` (in seconds of CPU).
pub fn pct(a: &ProcSample, b: &ProcSample, pick: impl Fn(&ProcSample) -> f64) -> f64 {
    let dt = b.at.duration_since(a.at).as_secs_f64();
    calc::ratio(100.0 * (pick(b) - pick(a)).max(0.0), dt)
}

pub fn sigterm(pid: u32) {
    // SAFETY: kill() only sends a signal to the child we spawned (pid from `Child::id`, not yet
    // reaped, so it cannot have been reused); it touches no memory.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
