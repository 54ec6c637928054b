//! The self-timed [`Simulator`]: pacing, faults, its own thread.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(super) struct Shared {
    blocks: AtomicU64,
    data_messages: AtomicU64,
    event_messages: AtomicU64,
    dropped_by_fault: AtomicU64,
    late_blocks: AtomicU64,
    max_lateness_ns: AtomicU64,
    restarts: AtomicU64,
    loops: AtomicU64,
    finished: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Shared {
    fn set_error(&self, e: String) {
        let mut g = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }
}

/// SplitMix64: small, deterministic, good enough for fault injection.
pub(super) struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A self-timed Open Ephys ZMQ Interface publisher running on its own thread (`oe_sim`), plus a
/// heartbeat thread (`oe_sim_hb`). Dropping it stops it like [`Simulator::stop`].
pub struct Simulator {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    hb: Option<HeartbeatServer>,
    data_port: u16,
    heartbeat_port: Option<u16>,
    host: String,
}

pub(super) struct Runner {
    cfg: SimConfig,
    channels: Vec<u32>,
    changed: Option<(u64, Vec<u32>)>,
    publ: Publisher,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    observer: Option<BlockObserver>,
}

/// Sleeps until `due` (bulk sleep in slices, then a short spin). Returns false if stopped.
pub(super) fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        let left = due - now;
        if left > SPIN_WINDOW {
            let chunk = (left - SPIN_WINDOW).min(Duration::from_millis(POLL_SLICE_MS as u64));
            std::thread::sleep(chunk);
        } else {
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            return true;
        }
    }
}

impl Runner {
    fn run(mut self) {
        let natural_end = match self.stream() {
            Ok(natural) => natural,
            Err(e) => {
                self.shared.set_error(e);
                false
            }
        };
        let linger = if natural_end {
            NATURAL_END_LINGER_MS
        } else {
            0
        };
        let _ = self.publ.sock.set_linger(linger);
        self.shared.finished.store(true, Ordering::Release);
        // `self.publ` (and its socket) is dropped here.
    }

    /// Returns Ok(true) when the run ended by max_blocks/duration, Ok(false) when stopped.
    fn stream(&mut self) -> Result<bool, String> {
        if self.cfg.wait_for_subscriber
            && !wait_subscription(&self.publ.sock, Some(&self.stop), None)?
        {
            return Ok(false);
        }
        let cfg = &self.cfg;
        let rate = cfg.sample_rate;
        let faults = &cfg.faults;
        let p_drop = if faults.drop_probability.is_nan() {
            0.0
        } else {
            faults.drop_probability.clamp(0.0, 1.0)
        };
        let mut drop_rng = Rng(faults.seed);
        let mut size_rng = Rng(faults.seed ^ 0xB10C_B10C_B10C_B10C);
        let gui_n = BlockSize::gui_block(rate);
        let ts = |on: bool| if on { Some(now_ms()) } else { None };

        let t0 = Instant::now();
        let mut sched_secs = 0.0f64;
        let mut sample_num = cfg.start_sample;
        let mut ttl_state: u8 = 0;
        let mut samples: Vec<f32> = Vec::new();
        let mut payload: Vec<u8> = Vec::new();
        let mut k: u64 = 0;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            if cfg.max_blocks.is_some_and(|m| k >= m) {
                return Ok(true);
            }
            if cfg.duration.is_some_and(|d| {
                t0.elapsed() >= d || (cfg.realtime && sched_secs >= d.as_secs_f64())
            }) {
                return Ok(true);
            }
            if k > 0 {
                if faults
                    .restart_every_blocks
                    .is_some_and(|r| r > 0 && k.is_multiple_of(r))
                {
                    self.publ.set_message_num(1);
                    self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                }
                if faults
                    .loop_every_blocks
                    .is_some_and(|l| l > 0 && k.is_multiple_of(l))
                {
                    sample_num = cfg.start_sample;
                    self.shared.loops.fetch_add(1, Ordering::Relaxed);
                }
            }
            let channels: &[u32] = match &self.changed {
                Some((from, set)) if k >= *from => set,
                _ => &self.channels,
            };
            let n = match cfg.block {
                BlockSize::Gui => gui_n,
                BlockSize::Fixed(n) => n,
                BlockSize::Alternating(a, b) => {
                    if k.is_multiple_of(2) {
                        a
                    } else {
                        b
                    }
                }
                BlockSize::Jitter { min, max } => {
                    let span = ((max - min) as u64).saturating_add(1);
                    min.saturating_add((size_rng.next_u64() % span) as usize)
                }
            };
            let period = n as f64 / rate;

            if cfg.realtime {
                let due = Duration::try_from_secs_f64(sched_secs)
                    .ok()
                    .and_then(|d| t0.checked_add(d))
                    .ok_or_else(|| format!("schedule overflow at block {k}"))?;
                if !sleep_until(due, &self.stop) {
                    return Ok(false);
                }
                let late = Instant::now().saturating_duration_since(due);
                if late.as_secs_f64() > period {
                    self.shared.late_blocks.fetch_add(1, Ordering::Relaxed);
                }
                let ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
                self.shared.max_lateness_ns.fetch_max(ns, Ordering::Relaxed);
            }
            self.publ.drain_subscriptions();

            if cfg
                .ttl_every_blocks
                .is_some_and(|t| t > 0 && k.is_multiple_of(t))
            {
                ttl_state ^= 1;
                self.publ.send_ttl(
                    &cfg.stream,
                    TTL_SOURCE_NODE,
                    sample_num,
                    0,
                    ttl_state,
                    u64::from(ttl_state),
                    ts(cfg.timestamps),
                )?;
                self.shared.event_messages.fetch_add(1, Ordering::Relaxed);
            }

            for &ch in channels {
                if p_drop > 0.0 && drop_rng.unit() < p_drop {
                    self.publ.next_message_num();
                    self.shared.dropped_by_fault.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                samples.clear();
                samples.extend(
                    (0..n as i64).map(|i| {
                        signal_value_fs(&cfg.signal, ch, sample_num.wrapping_add(i), rate)
                    }),
                );
                payload.clear();
                for s in &samples {
                    payload.extend_from_slice(&s.to_le_bytes());
                }
                let name_buf;
                let name: Option<&str> = if cfg.channel_names {
                    name_buf = format!("CH{}", u64::from(ch) + 1);
                    Some(&name_buf)
                } else {
                    None
                };
                self.publ.send_data_bytes(
                    &cfg.stream,
                    ch,
                    name,
                    sample_num,
                    rate,
                    n,
                    &payload,
                    ts(cfg.timestamps),
                )?;
                self.shared.data_messages.fetch_add(1, Ordering::Relaxed);
            }
            let sent_at = Instant::now();
            self.shared.blocks.fetch_add(1, Ordering::Relaxed);
            if let Some(obs) = self.observer.as_mut() {
                obs(sample_num, n, channels.len(), sent_at);
            }
            sample_num = sample_num.wrapping_add(n as i64);
            sched_secs += period;
            k += 1;
        }
    }
}

pub(super) fn sorted_set(v: &[u32]) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

impl Simulator {
    /// Validates `cfg`, binds the data socket (and the heartbeat socket on data port + 1) *before*
    /// returning — a caller may connect right away — then streams on a thread named `oe_sim`.
    /// Heartbeats are served by a thread `oe_sim_hb` from the moment this returns.
    pub fn start(
        cfg: SimConfig,
        ctx: &zmq::Context,
        observer: Option<BlockObserver>,
    ) -> Result<Simulator, String> {
        if !(cfg.sample_rate.is_finite() && cfg.sample_rate > 0.0) {
            return Err(format!("invalid sample_rate {}", cfg.sample_rate));
        }
        match cfg.block {
            BlockSize::Fixed(0) => return Err("block size 0".to_string()),
            BlockSize::Alternating(a, b) if a == 0 || b == 0 => {
                return Err("block size 0".to_string())
            }
            BlockSize::Jitter { min, max } if min == 0 || max < min => {
                return Err(format!("invalid jitter range {min}..={max}"))
            }
            _ => {}
        }
        let channels = sorted_set(&cfg.channels);
        let changed = cfg
            .faults
            .channel_change
            .as_ref()
            .map(|(k, set)| (*k, sorted_set(set)));
        let (sock, rep, port) = bind_pair(
            ctx,
            &cfg.bind_host,
            cfg.data_port,
            cfg.heartbeat,
            cfg.wait_for_subscriber,
            cfg.send_hwm,
        )?;
        let hb = match rep {
            Some(rep) => Some(HeartbeatServer::spawn(rep)?),
            None => None,
        };
        let heartbeat_port = hb.as_ref().map(|_| port + 1);
        let publ = Publisher::from_socket(sock, cfg.wait_for_subscriber, &cfg.bind_host, port);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let host = cfg.bind_host.clone();
        let runner = Runner {
            cfg,
            channels,
            changed,
            publ,
            stop: stop.clone(),
            shared: shared.clone(),
            observer,
        };
        let thread = std::thread::Builder::new()
            .name("oe_sim".to_string())
            .spawn(move || runner.run())
            .map_err(|e| format!("cannot spawn simulator thread: {e}"))?;
        Ok(Simulator {
            stop,
            shared,
            thread: Some(thread),
            hb,
            data_port: port,
            heartbeat_port,
            host,
        })
    }

    /// The bound data port (useful with `data_port: 0`).
    pub fn data_port(&self) -> u16 {
        self.data_port
    }

    /// The heartbeat port (data port + 1), if heartbeats are enabled.
    pub fn heartbeat_port(&self) -> Option<u16> {
        self.heartbeat_port
    }

    /// Endpoint a local SUB should connect to (`tcp://127.0.0.1:port` when bound on `*`).
    pub fn data_endpoint(&self) -> String {
        endpoint(connect_host(&self.host), self.data_port)
    }

    /// Endpoint a local REQ should connect to for heartbeats, if enabled.
    pub fn heartbeat_endpoint(&self) -> Option<String> {
        self.heartbeat_port
            .map(|p| endpoint(connect_host(&self.host), p))
    }

    /// Live snapshot of the statistics.
    pub fn stats(&self) -> SimStats {
        let s = &self.shared;
        SimStats {
            blocks: s.blocks.load(Ordering::Relaxed),
            data_messages: s.data_messages.load(Ordering::Relaxed),
            event_messages: s.event_messages.load(Ordering::Relaxed),
            dropped_by_fault: s.dropped_by_fault.load(Ordering::Relaxed),
            hwm_dropped_unknown: true,
            heartbeats_answered: self
                .hb
                .as_ref()
                .map(|h| h.answered.load(Ordering::Relaxed))
                .unwrap_or(0),
            late_blocks: s.late_blocks.load(Ordering::Relaxed),
            max_lateness: Duration::from_nanos(s.max_lateness_ns.load(Ordering::Relaxed)),
            restarts: s.restarts.load(Ordering::Relaxed),
            loops: s.loops.load(Ordering::Relaxed),
            error: s.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Whether the streaming thread has ended (max_blocks/duration reached, stopped, or error).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    fn join_stream(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                self.shared
                    .set_error("simulator thread panicked (observer?)".to_string());
                self.shared.finished.store(true, Ordering::Release);
            }
        }
    }

    pub(super) fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join_stream();
        if let Some(hb) = self.hb.as_mut() {
            hb.shutdown();
        }
    }

    /// Stops streaming (within ~20 ms, even while waiting for a subscriber), joins the threads,
    /// closes the sockets with linger 0 and returns the final statistics.
    pub fn stop(mut self) -> SimStats {
        self.shutdown();
        self.stats()
    }

    /// Waits until the run ends by itself (`max_blocks` or `duration`; counted from the first
    /// subscriber when `wait_for_subscriber`), then stops the heartbeat thread and returns the final
    /// statistics. The data socket is closed with a 1 s linger so queued messages still reach
    /// connected subscribers. Without `max_blocks` and `duration` this blocks until an error.
    pub fn wait(mut self) -> SimStats {
        self.join_stream();
        self.shutdown();
        self.stats()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
