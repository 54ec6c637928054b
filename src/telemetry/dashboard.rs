//! Live full-screen terminal dashboard.
//!
//! A render thread (`dashboard`) redraws 4 times a second from the counters the threads
//! already publish ([`Stats`]: counter blocks and `last_message_ms`, read through
//! [`crate::telemetry::livestats`]); it never touches the hot threads and needs nothing of the
//! engine. Plain ANSI escape sequences: the
//! alternate screen (`ESC[?1049h` / `ESC[?1049l`), cursor home, erase to end of line and below,
//! hidden cursor. Each frame is one `write_all`.
//!
//! The terminal is restored
//! * on a normal stop ([`Dashboard::stop`], or dropping the [`Dashboard`]),
//! * on Ctrl+C / SIGTERM: the main loop stops on those and then stops the dashboard; a
//!   second signal exits at once, so [`install_signal_restore`] registers a signal action
//!   (run before the immediate exit) that writes the restore sequence with `write(2)`,
//! * on a panic in any thread: a panic hook restores first, then calls the previous hook (so
//!   the panic message lands on the normal screen), and the render thread stops drawing.
//!
//! The render thread measures its own CPU time (`CLOCK_THREAD_CPUTIME_ID`), reported by
//! [`Dashboard::stop`].
#![allow(unsafe_code)]

use crate::telemetry::counters::Stats;
use crate::telemetry::livestats::{Rates, Sample};
use crate::telemetry::sys;
use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames per second.
pub const FPS: u32 = 4;

/// Enter the alternate screen, hide the cursor, clear, home.
pub const ENTER: &[u8] = b"\x1b[?1049h\x1b[?25l\x1b[2J\x1b[H";
/// Show the cursor, leave the alternate screen.
pub const LEAVE: &[u8] = b"\x1b[?25h\x1b[?1049l";

/// True while the alternate screen is on (set by the render thread, cleared by whoever
/// restores first).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Leaves the alternate screen and shows the cursor, if the dashboard had entered it.
/// Idempotent; safe to call from any thread (not from a signal handler).
pub fn restore_terminal() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(LEAVE);
        let _ = out.flush();
    }
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            prev(info);
        }));
    });
}

/// Registers, for SIGINT and SIGTERM, a signal action that restores the terminal when the
/// signal is the one that will exit the process at once (`term` already set by a first
/// signal). Call it *before* registering `signal_hook::flag::register_conditional_shutdown`
/// so it runs first (signal-hook runs a signal's actions in registration order).
pub fn install_signal_restore(term: &Arc<AtomicBool>) -> std::io::Result<()> {
    #[cfg(unix)]
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let term = term.clone();
        let action = move || {
            if term.load(Ordering::SeqCst) && ACTIVE.swap(false, Ordering::SeqCst) {
                sys::raw_write_stdout(LEAVE);
            }
        };
        // SAFETY: the action only does atomic loads/swaps and one write(2), all of which
        // are async-signal-safe; it neither allocates nor locks.
        unsafe { signal_hook::low_level::register(sig, action) }?;
    }
    #[cfg(not(unix))]
    let _ = term;
    Ok(())
}

/// Fixed facts shown at the top of the dashboard.
#[derive(Debug, Clone, Default)]
pub struct DashboardInfo {
    /// ZMQ data endpoint.
    pub data_endpoint: String,
    /// Heartbeat endpoint and identity.
    pub heartbeat: String,
    /// OSC output description (mode, destination, UDP backend).
    pub output: String,
    /// Ring capacity in blocks (queue fill denominator).
    pub ring_capacity: usize,
    /// Queue policy name.
    pub policy: String,
    /// Downsampling factor.
    pub factor: usize,
}

/// What the render thread cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderCost {
    /// Frames drawn.
    pub frames: u64,
    /// CPU time of the render thread (`None` where unsupported).
    pub cpu: Option<Duration>,
    /// Wall time the render thread ran.
    pub wall: Duration,
}

impl RenderCost {
    /// CPU time as a percentage of one core over the wall time.
    pub fn percent_of_core(&self) -> Option<f64> {
        let w = self.wall.as_secs_f64();
        self.cpu.map(|c| {
            if w > 0.0 {
                c.as_secs_f64() / w * 100.0
            } else {
                0.0
            }
        })
    }
}

/// A running dashboard (render thread). Stop it with [`Dashboard::stop`]; dropping it stops
/// it too.
pub struct Dashboard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<RenderCost>>,
}

impl Dashboard {
    /// Enters the alternate screen and starts redrawing [`FPS`] times a second.
    pub fn start(
        shared: Arc<Stats>,
        started: Instant,
        info: DashboardInfo,
    ) -> std::io::Result<Dashboard> {
        install_panic_hook();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || render_loop(&shared, started, &info, &s))?;
        Ok(Dashboard {
            stop,
            thread: Some(thread),
        })
    }

    fn finish(&mut self) -> RenderCost {
        self.stop.store(true, Ordering::SeqCst);
        let cost = match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join().unwrap_or_default()
            }
            None => RenderCost::default(),
        };
        restore_terminal();
        cost
    }

    /// Stops the render thread, restores the terminal and returns the render cost.
    pub fn stop(mut self) -> RenderCost {
        self.finish()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.finish();
    }
}

fn render_loop(
    shared: &Stats,
    started: Instant,
    info: &DashboardInfo,
    stop: &AtomicBool,
) -> RenderCost {
    let t0 = Instant::now();
    let cpu0 = sys::thread_cpu_time();
    {
        let mut out = std::io::stdout().lock();
        if out.write_all(ENTER).and_then(|_| out.flush()).is_err() {
            return RenderCost::default();
        }
        ACTIVE.store(true, Ordering::SeqCst);
    }
    let period = Duration::from_secs(1) / FPS;
    // Rates over the last second: keep FPS + 1 samples.
    let mut window: VecDeque<Sample> = VecDeque::with_capacity(FPS as usize + 2);
    let mut buf = String::with_capacity(8192);
    let mut frames = 0u64;
    let mut cost_pct: Option<f64> = None;
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) && ACTIVE.load(Ordering::SeqCst) {
        let cur = Sample::take(shared, started);
        if window.len() > FPS as usize {
            window.pop_front();
        }
        let rates = window
            .front()
            .map(|p| Rates::between(p, &cur))
            .unwrap_or_default();
        let (cols, rows) = sys::terminal_size().unwrap_or((80, 24));
        buf.clear();
        render(&mut buf, info, &cur, &rates, cost_pct, cols, rows);
        {
            let mut out = std::io::stdout().lock();
            // Re-check under the lock: a panic hook may have restored the screen meanwhile.
            if !ACTIVE.load(Ordering::SeqCst)
                || out
                    .write_all(buf.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
            {
                break;
            }
        }
        frames += 1;
        window.push_back(cur);
        if let (Some(a), Some(b)) = (cpu0, sys::thread_cpu_time()) {
            let w = t0.elapsed().as_secs_f64();
            if w > 0.0 {
                cost_pct = Some((b - a).as_secs_f64() / w * 100.0);
            }
        }
        next += period;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::park_timeout(next - now);
        }
    }
    let cpu = match (cpu0, sys::thread_cpu_time()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    RenderCost {
        frames,
        cpu,
        wall: t0.elapsed(),
    }
}

fn fmt_count(v: u64) -> String {
    // 12345678 -> "12 345 678"
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn fmt_age(age: Option<f64>) -> String {
    match age {
        None => "never".into(),
        Some(a) if a < 1.0 => format!("{:.0} ms ago", a * 1000.0),
        Some(a) => format!("{a:.1} s ago"),
    }
}

fn bar(fill: f64, width: usize) -> String {
    let n = ((fill.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    let mut s = String::with_capacity(width + 2);
    s.push('[');
    s.extend(std::iter::repeat_n('#', n));
    s.extend(std::iter::repeat_n('.', width - n));
    s.push(']');
    s
}

/// Renders one frame (cursor home, lines cut to `cols`, each line erased to its end, the rest
/// of the screen erased) into `out`.
pub fn render(
    out: &mut String,
    info: &DashboardInfo,
    s: &Sample,
    r: &Rates,
    render_cost_pct: Option<f64>,
    cols: usize,
    rows: usize,
) {
    let mut lines: Vec<String> = Vec::with_capacity(32);
    let up = s.t as u64;
    lines.push(format!(
        "openephys-zmq2osc {} - live   up {:02}:{:02}:{:02}   Ctrl+C stops",
        env!("CARGO_PKG_VERSION"),
        up / 3600,
        up / 60 % 60,
        up % 60
    ));
    lines.push("-".repeat(cols.min(96)));
    lines.push("CONNECTION".into());
    lines.push(format!(
        "  heartbeat  {:<14} {}   sent {} replies {} resets {}",
        s.hb_state(),
        info.heartbeat,
        s.hb("sent"),
        s.hb("replies"),
        s.hb("resets")
    ));
    lines.push(format!(
        "  ZMQ data   {}   connects {}  disconnects {}  last message {}",
        info.data_endpoint,
        s.hb("data_connects"),
        s.hb("data_disconnects"),
        fmt_age(s.last_message_age)
    ));
    lines.push(format!("  OSC out    {}", info.output));
    if !s.sources.is_empty() {
        // Listed sources (`zmq.sources`): one line each; the lines above and below sum them.
        lines.push("SOURCES".into());
        for src in &s.sources {
            lines.push(format!(
                "  <{}> {}  heartbeat {} (replies {})  connects {} disconnects {}  last message {}  | {} ch @ {:.1} Hz  msgs {}  blocks {}  restarts {}",
                src.name,
                src.endpoint,
                src.hb_state(),
                src.hb("replies"),
                src.hb("data_connects"),
                src.hb("data_disconnects"),
                fmt_age(src.last_message_age),
                src.rx("channels"),
                src.rx("sample_rate_mhz") as f64 / 1000.0,
                fmt_count(src.rx("messages")),
                fmt_count(src.rx("blocks_emitted")),
                src.rx("restarts"),
            ));
        }
    }
    lines.push("STREAM".into());
    let ch = s.rx("channels");
    let fs = s.sample_rate_hz();
    lines.push(if ch == 0 && fs == 0.0 {
        "  (no stream learned yet)".into()
    } else {
        format!(
            "  {} channels @ {:.1} Hz  (F = {}: {:.1} rows/s out)   stream changes {}  channel-set changes {}  restarts {}  loops {}",
            ch,
            fs,
            info.factor,
            fs / info.factor.max(1) as f64,
            s.rx("stream_changes"),
            s.rx("channel_set_changes"),
            s.rx("restarts"),
            s.rx("backward_jumps")
        )
    });
    lines.push("THROUGHPUT (last second)".into());
    lines.push(format!(
        "  ZMQ  {:>10.0} msg/s     {:>8.1} blocks/s      total {} msgs, {} blocks",
        r.zmq_msgs,
        r.blocks,
        fmt_count(s.rx("messages")),
        fmt_count(s.rx("blocks_emitted"))
    ));
    lines.push(format!(
        "  OSC  {:>10.0} dgram/s   {:>8.2} MB/s          total {} datagrams",
        r.datagrams,
        r.mbytes,
        fmt_count(s.tx("sent"))
    ));
    let queued = s.tx("queued");
    let cap = info.ring_capacity.max(1);
    lines.push(format!(
        "  queue {} {} / {} blocks ({:.0} %), policy {}",
        bar(queued as f64 / cap as f64, 30),
        queued,
        cap,
        queued as f64 / cap as f64 * 100.0,
        info.policy
    ));
    let d = s.drops();
    lines.push("LOSSES (since start)".into());
    lines.push(format!(
        "  incomplete blocks   {:>9}   upstream-loss blocks {:>9}   upstream missing msgs {:>9}",
        d.incomplete, d.incomplete_upstream, d.upstream_missing_msgs
    ));
    lines.push(format!(
        "  while learning      {:>9}   no free frame        {:>9}   (blocks dropped at the receiver)",
        d.learning, d.no_frame
    ));
    lines.push(format!(
        "  dropped oldest      {:>9}   dropped newest       {:>9}   (queue policy)",
        d.dropped_oldest, d.dropped_newest
    ));
    lines.push(format!(
        "  send failures       {:>9}   malformed msgs       {:>9}   oversize datagrams    {:>9}",
        d.send_failed, d.malformed, d.oversize
    ));
    lines.push(format!(
        "  of the send failures: kernel buffer full {}  refused {}  too big {}  other {}",
        s.tx("would_block_dropped"),
        s.tx("refused"),
        s.tx("too_big"),
        s.tx("other_errors")
    ));
    lines.push(format!(
        "  upstream gaps       {:>9}   ({} samples missing by sample_num)   late msgs {}",
        s.rx("upstream_sample_gaps"),
        s.rx("upstream_missing_samples"),
        d.late
    ));
    lines.push("PROCESS".into());
    let cpu = r
        .cpu_percent
        .map_or("n/a".to_string(), |c| format!("{c:.1} % of a core"));
    let rss = s.process.map_or("n/a".to_string(), |p| {
        format!("{:.1} MiB", p.rss_bytes as f64 / (1 << 20) as f64)
    });
    let own = render_cost_pct.map_or("n/a".to_string(), |c| format!("{c:.3} % of a core"));
    lines.push(format!("  CPU {cpu}   RSS {rss}   dashboard itself {own}"));
    lines.push("LATENCY".into());
    lines.push(match s.bridge_added {
        Some((p50, p99, n)) => format!(
            "  bridge_added p50 {:.3} ms   p99 {:.3} ms   ({n} blocks; updated once a second)",
            p50 as f64 / 1e6,
            p99 as f64 / 1e6
        ),
        None => "  bridge_added: no block sent yet".into(),
    });
    if let Some((p50, p99, _)) = s.publisher_to_wire {
        lines.push(format!(
            "  end to end from the GUI's header timestamp: p50 {:.1} ms   p99 {:.1} ms   (ms resolution; needs synced clocks)",
            p50 as f64 / 1e6,
            p99 as f64 / 1e6
        ));
    }

    out.push_str("\x1b[H");
    let n = lines.len().min(rows.max(1));
    for (i, l) in lines.iter().take(n).enumerate() {
        if l.chars().count() > cols {
            out.extend(l.chars().take(cols));
        } else {
            out.push_str(l);
        }
        out.push_str("\x1b[K");
        if i + 1 < n {
            out.push_str("\r\n");
        }
    }
    out.push_str("\x1b[J");
}

/// The frame as plain text (escape sequences removed), for tests.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::counters::{HB_COUNTERS, RX_COUNTERS, TX_COUNTERS};

    fn set(v: &mut [u64], names: &[&str], n: &str, x: u64) {
        v[names.iter().position(|k| *k == n).unwrap()] = x;
    }

    fn sample() -> Sample {
        let mut rx = vec![0; RX_COUNTERS.len()];
        set(&mut rx, RX_COUNTERS, "channels", 256);
        set(&mut rx, RX_COUNTERS, "sample_rate_mhz", 30_000_000);
        set(&mut rx, RX_COUNTERS, "blocks_incomplete", 3);
        set(&mut rx, RX_COUNTERS, "blocks_learning", 5);
        set(&mut rx, RX_COUNTERS, "blocks_no_frame", 6);
        let mut tx = vec![0; TX_COUNTERS.len()];
        set(&mut tx, TX_COUNTERS, "queued", 41);
        let mut hb = vec![0; HB_COUNTERS.len()];
        set(&mut hb, HB_COUNTERS, "state", 1);
        Sample {
            at: Instant::now(),
            t: 3723.0,
            rx,
            tx,
            hb,
            last_message_age: Some(0.004),
            sources: Vec::new(),
            process: None,
            bridge_added: None,
            publisher_to_wire: None,
        }
    }

    #[test]
    fn frame_shows_the_counters_and_fits() {
        let info = DashboardInfo {
            data_endpoint: "tcp://127.0.0.1:5556".into(),
            heartbeat: "tcp://127.0.0.1:5557".into(),
            output: "/data/sample -> udp://127.0.0.1:10000".into(),
            ring_capacity: 164,
            policy: "drop_oldest".into(),
            factor: 1,
        };
        let r = Rates {
            dt: 1.0,
            zmq_msgs: 11_000.0,
            blocks: 43.1,
            datagrams: 30_000.0,
            mbytes: 39.1,
            cpu_percent: None,
        };
        let mut f = String::new();
        render(&mut f, &info, &sample(), &r, Some(0.05), 100, 40);
        assert!(f.starts_with("\x1b[H") && f.ends_with("\x1b[J"));
        let text = strip_ansi(&f);
        for want in [
            "up 01:02:03",
            "online",
            "256 channels @ 30000.0 Hz",
            "11000 msg/s",
            "30000 dgram/s",
            "41 / 164 blocks",
            "incomplete blocks           3",
            "while learning              5",
            "no free frame                6",
            "CPU n/a",
            "RSS n/a",
            "no block sent yet",
            "4 ms ago",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(
            !text.contains("SOURCES"),
            "no source lines for the single source"
        );
        // Listed sources: a line each.
        let mut with = sample();
        for (name, state, msgs) in [("probeA", 1, 1234), ("probeB", 2, 7)] {
            let mut rx = vec![0; RX_COUNTERS.len()];
            set(&mut rx, RX_COUNTERS, "messages", msgs);
            set(&mut rx, RX_COUNTERS, "restarts", 1);
            let mut hb = vec![0; HB_COUNTERS.len()];
            set(&mut hb, HB_COUNTERS, "state", state);
            with.sources
                .push(crate::telemetry::livestats::SourceSample {
                    name: name.into(),
                    endpoint: "tcp://127.0.0.1:1".into(),
                    rx,
                    hb,
                    last_message_age: None,
                });
        }
        f.clear();
        render(&mut f, &info, &with, &r, None, 200, 60);
        let text = strip_ansi(&f);
        assert!(text.contains("SOURCES"), "{text}");
        assert!(
            text.contains("<probeA> tcp://127.0.0.1:1  heartbeat online"),
            "{text}"
        );
        assert!(
            text.contains("<probeB> tcp://127.0.0.1:1  heartbeat not_responding"),
            "{text}"
        );
        assert!(text.contains("msgs 1 234"), "{text}");
        // Narrow, short terminal: every line cut to the width, no more lines than rows.
        f.clear();
        render(&mut f, &info, &sample(), &r, None, 40, 10);
        let text = strip_ansi(&f);
        assert_eq!(text.lines().count(), 10);
        assert!(text.lines().all(|l| l.chars().count() <= 40));
    }

    #[test]
    fn restore_is_idempotent_panics_restore_and_cost_math() {
        restore_terminal(); // not active: writes nothing
                            // A panic on any thread restores the terminal before the previous hook runs.
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let r = std::thread::spawn(|| panic!("test panic (expected)")).join();
        assert!(r.is_err());
        assert!(!ACTIVE.load(Ordering::SeqCst), "panic hook did not restore");
        let c = RenderCost {
            frames: 4,
            cpu: Some(Duration::from_millis(10)),
            wall: Duration::from_secs(10),
        };
        assert!((c.percent_of_core().unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(fmt_count(1234567), "1 234 567");
        assert_eq!(bar(0.5, 4), "[##..]");
    }

    #[cfg(unix)]
    #[test]
    fn thread_cpu_clock_works() {
        let a = sys::thread_cpu_time().unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = sys::thread_cpu_time().unwrap();
        assert!(b >= a);
        assert!(sys::clock_ticks_per_second() > 0);
    }
}
