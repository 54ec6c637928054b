//! Baselines: bare ZeroMQ drain and raw UDP sender.

use super::cpu::*;
use super::rows::*;
use super::run::*;
use super::scenarios::*;
use crate::stress::calc;
use crate::stress::table::{Cell, Row};
use oe_testkit::sim::{self, BlockSize, SimConfig, Simulator};
use oe_testkit::sink::{Layout, Method, Sink, SinkConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zmq2osc::net::{SenderOptions, UdpSender};

#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// The receiving thread (thread CPU clock), % of one core.
    pub thread_cpu_pct: f64,
    /// The drain's own libzmq context threads (I/O + reaper), % of one core.
    pub io_cpu_pct: f64,
    /// Messages received ÷ data messages the simulator published.
    pub received: f64,
}

pub struct DrainMark {
    pub at: Instant,
    pub thread_ns: u64,
    pub io_ns: u64,
    pub msgs: u64,
    pub bytes: u64,
}

pub fn io_ns(tids: &[u32]) -> u64 {
    tids.iter().filter_map(|&t| own_thread_cpu_ns(t)).sum()
}

/// A plain SUB with the bridge's socket options on the same simulator stream as a full-rate
/// row, receiving every frame into one buffer and discarding it: the least any ZeroMQ client
/// spends on this stream. CPU = the receiving thread plus this SUB's own libzmq I/O thread (the
/// bridge's CPU includes its libzmq I/O thread too), over the stream minus the warm-up.
pub fn run_drain(
    channels: u32,
    block: &BlockSize,
    seconds: f64,
    hwm: i32,
) -> Result<Drain, String> {
    let sim_ctx = zmq::Context::new();
    let simulator = Simulator::start(
        SimConfig {
            bind_host: "127.0.0.1".into(),
            data_port: 0,
            heartbeat: false,
            channels: (0..channels).collect(),
            sample_rate: RATE,
            block: block.clone(),
            signal: sim::Signal::Pattern {
                wrap: sim::pattern_wrap(channels - 1),
            },
            duration: Some(Duration::from_secs_f64(seconds)),
            realtime: true,
            send_hwm: hwm,
            wait_for_subscriber: true,
            ..SimConfig::default()
        },
        &sim_ctx,
        None,
    )?;
    // The drain's libzmq threads: the ones that appear when its context makes its first socket.
    let before = own_tids();
    let dctx = zmq::Context::new();
    let sub = dctx.socket(zmq::SUB).map_err(|e| e.to_string())?;
    let io_tids: Vec<u32> = own_tids().difference(&before).copied().collect();
    sub.set_maxmsgsize(BRIDGE_MAXMSGSIZE)
        .and_then(|_| sub.set_rcvhwm(BRIDGE_RCVHWM))
        .and_then(|_| sub.set_rcvbuf(BRIDGE_RCVBUF))
        .and_then(|_| sub.set_linger(0))
        .and_then(|_| sub.set_subscribe(b""))
        .and_then(|_| sub.connect(&simulator.data_endpoint()))
        .map_err(|e| format!("drain socket: {e}"))?;
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let warm = warmup(seconds);
    let handle = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || -> Result<(DrainMark, DrainMark, u64), String> {
            let mut buf = vec![0u8; BRIDGE_MAXMSGSIZE as usize];
            let (mut msgs, mut bytes) = (0u64, 0u64);
            let mut first: Option<Instant> = None;
            let mut mark: Option<DrainMark> = None;
            let mut end: Option<DrainMark> = None;
            let give_up =
                Instant::now() + SUBSCRIBE_TIMEOUT + Duration::from_secs_f64(seconds * 2.0);
            loop {
                match sub.recv_into(&mut buf, zmq::DONTWAIT) {
                    Ok(n) => {
                        bytes += n as u64;
                        if !sub.get_rcvmore().unwrap_or(false) {
                            msgs += 1;
                        }
                        if mark.is_none() {
                            let now = Instant::now();
                            let f = *first.get_or_insert(now);
                            if now.duration_since(f) >= warm {
                                mark = Some(DrainMark {
                                    at: now,
                                    thread_ns: thread_cpu_ns(),
                                    io_ns: io_ns(&io_tids),
                                    msgs,
                                    bytes,
                                });
                            }
                        }
                    }
                    Err(zmq::Error::EAGAIN) => {
                        let now = Instant::now();
                        if d2.load(Ordering::Acquire) || now > give_up {
                            // The stream is over: close the window, then take what is queued.
                            let e = end.get_or_insert_with(|| DrainMark {
                                at: now,
                                thread_ns: thread_cpu_ns(),
                                io_ns: io_ns(&io_tids),
                                msgs,
                                bytes,
                            });
                            if now.duration_since(e.at) > Duration::from_millis(200) {
                                break;
                            }
                        }
                        let mut items = [sub.as_poll_item(zmq::POLLIN)];
                        let _ = zmq::poll(&mut items, 10);
                    }
                    Err(e) => return Err(format!("drain receive: {e}")),
                }
            }
            let end = end.ok_or("drain ended without a window")?;
            let mark = mark.ok_or("the drain received less than the warm-up")?;
            Ok((mark, end, msgs))
        })
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SUBSCRIBE_TIMEOUT + Duration::from_secs_f64(seconds * 2.0);
    while !simulator.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Release);
    let res = handle
        .join()
        .map_err(|_| "drain thread panicked".to_string())?;
    let sim_stats = simulator.stop();
    let (a, b, total) = res?;
    let wall = b.at.duration_since(a.at).as_secs_f64();
    Ok(Drain {
        msgs_per_s: calc::ratio((b.msgs - a.msgs) as f64, wall),
        mb_per_s: calc::ratio((b.bytes - a.bytes) as f64 / 1e6, wall),
        thread_cpu_pct: calc::ratio(100.0 * (b.thread_ns - a.thread_ns) as f64 / 1e9, wall),
        io_cpu_pct: calc::ratio(100.0 * b.io_ns.saturating_sub(a.io_ns) as f64 / 1e9, wall),
        received: calc::ratio(total as f64, sim_stats.data_messages as f64),
    })
}

#[derive(Debug, Clone)]
pub struct UdpBaseline {
    pub bytes: usize,
    pub dgrams_per_s: f64,
    pub cpu_pct: f64,
    pub per_syscall: f64,
    pub delivered: f64,
    pub kernel_drops: u64,
    pub backend: &'static str,
    /// p50, p99 and max of one block's work in the sender thread (writing the values of its
    /// 696 datagrams and sending them), ms: the floor of the bridge's `shard_frame_cost`.
    pub block_ms: [f64; 3],
    /// The verifying sink's receiver thread, % of one core over the baseline's time: what the
    /// instrument costs to receive and check this stream, without bridge or simulator.
    pub sink_cpu_pct: f64,
}

/// Sends what sample mode sends for `channels` (30 000 equal datagrams/s, one burst per block)
/// with `UdpSender` (GSO on) to a verifying sink, and measures the sender thread's CPU.
pub fn run_udp_baseline(channels: u32, block: usize, seconds: f64) -> UdpBaseline {
    let wrap = sim::pattern_wrap(channels - 1);
    let sink = Sink::start(SinkConfig {
        bind: ([127, 0, 0, 1], 0).into(),
        recv_buffer_bytes: SINK_RCVBUF,
        base_address: "/data".into(),
        layout: Layout::Sample,
        channels: (0..channels).collect(),
        wrap,
        factor: 1,
        method: Method::Average,
        block_clock: None,
    })
    .expect("baseline sink");
    let template = rosc::encoder::encode(&rosc::OscPacket::Message(rosc::OscMessage {
        addr: "/data/sample".into(),
        args: vec![rosc::OscType::Float(0.0); channels as usize],
    }))
    .expect("encode template");
    let size = template.len();
    let head = size - 4 * channels as usize;
    let dest = sink.local_addr();
    let t_start = Instant::now();
    let handle = std::thread::spawn(move || {
        let mut tx = UdpSender::connect(
            dest,
            &SenderOptions {
                use_gso: true,
                ..SenderOptions::default()
            },
        )
        .expect("baseline sender");
        let mut arena = Vec::with_capacity(block * size);
        for _ in 0..block {
            arena.extend_from_slice(&template);
        }
        let dgrams: Vec<(u32, u32)> = (0..block)
            .map(|i| ((i * size) as u32, size as u32))
            .collect();
        let blocks = (seconds * RATE / block as f64).round() as u64;
        let mut block_ns: Vec<u64> = Vec::with_capacity(blocks as usize);
        let warm = (warmup(seconds).as_secs_f64() * RATE / block as f64).ceil() as u64;
        let t0 = Instant::now();
        let mut cpu0 = thread_cpu_ns();
        let mut wall0 = t0;
        let mut stats0 = tx.stats();
        for k in 0..blocks {
            let due = t0 + Duration::from_secs_f64(k as f64 * block as f64 / RATE);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if k == warm {
                cpu0 = thread_cpu_ns();
                wall0 = Instant::now();
                stats0 = tx.stats();
            }
            let block_start = Instant::now();
            let j0 = k as i64 * block as i64;
            for r in 0..block {
                let j = (j0 + r as i64).rem_euclid(i64::from(wrap)) as u64;
                let base = r * size + head;
                for ch in 0..channels as usize {
                    let v = (ch as u64 * u64::from(wrap) + j) as f32;
                    arena[base + 4 * ch..base + 4 * ch + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
            tx.send_batch(&arena, &dgrams);
            if k >= warm {
                block_ns.push(block_start.elapsed().as_nanos() as u64);
            }
        }
        // Close the last period before reading the clocks (the rate covers whole periods).
        let end = t0 + Duration::from_secs_f64(blocks as f64 * block as f64 / RATE);
        let now = Instant::now();
        if end > now {
            std::thread::sleep(end - now);
        }
        let cpu = thread_cpu_ns().saturating_sub(cpu0);
        let wall = wall0.elapsed().as_secs_f64();
        let s = tx.stats();
        let sent = s.datagrams_sent - stats0.datagrams_sent;
        let sys = s.syscalls - stats0.syscalls;
        (
            calc::ratio(100.0 * cpu as f64 / 1e9, wall),
            calc::ratio(sent as f64, wall),
            calc::ratio(sent as f64, sys as f64),
            blocks * block as u64,
            tx.backend(),
            block_ns,
        )
    });
    let (cpu, rate, per_sys, total_rows, backend, mut block_ns) =
        handle.join().expect("baseline thread");
    block_ns.sort_unstable();
    let q = |p: f64| {
        if block_ns.is_empty() {
            f64::NAN
        } else {
            let i = ((p * block_ns.len() as f64).ceil() as usize).clamp(1, block_ns.len()) - 1;
            block_ns[i] as f64 / 1e6
        }
    };
    sink.wait_for_rows(total_rows, Duration::from_millis(500));
    let rep = sink.stop();
    UdpBaseline {
        bytes: size,
        dgrams_per_s: rate,
        cpu_pct: cpu,
        per_syscall: per_sys,
        delivered: calc::ratio(rep.clean_rows as f64, total_rows as f64),
        kernel_drops: rep.kernel_drops,
        backend,
        block_ms: [q(0.5), q(0.99), q(1.0)],
        sink_cpu_pct: calc::ratio(
            100.0 * rep.thread_cpu_ns as f64 / 1e9,
            t_start.elapsed().as_secs_f64(),
        ),
    }
}

pub fn baseline_row(
    ctx: &Ctx,
    ch: u32,
    run: &str,
    seconds: f64,
    d: &Result<Drain, String>,
    u: &UdpBaseline,
) -> Row {
    let dv = |f: fn(&Drain) -> f64| d.as_ref().map_or(f64::NAN, f);
    let drain_total = dv(|d| d.thread_cpu_pct + d.io_cpu_pct);
    let mut row = Row::default();
    row.push("channels", Cell::Int(ch.into()))
        .push("run", Cell::text(run))
        .push("commit", Cell::text(&ctx.commit))
        .push("seconds", Cell::Num(seconds, 1))
        .push(
            "drain_error",
            Cell::text(d.as_ref().err().cloned().unwrap_or_default()),
        )
        .push("drain_msgs_per_s", Cell::Num(dv(|d| d.msgs_per_s), 1))
        .push("drain_mb_per_s", n2(dv(|d| d.mb_per_s)))
        .push("drain_thread_cpu_pct", n2(dv(|d| d.thread_cpu_pct)))
        .push("drain_zmq_io_cpu_pct", n2(dv(|d| d.io_cpu_pct)))
        .push("drain_cpu_pct", n2(drain_total))
        .push("drain_received", Cell::Num(dv(|d| d.received), 6))
        .push("udp_datagram_bytes", Cell::Int(u.bytes as u64))
        .push("udp_datagrams_per_s", Cell::Num(u.dgrams_per_s, 1))
        .push("udp_cpu_pct", n2(u.cpu_pct))
        .push("udp_datagrams_per_syscall", n3(u.per_syscall))
        .push("udp_delivered", Cell::Num(u.delivered, 6))
        .push("udp_kernel_drops", Cell::Int(u.kernel_drops))
        .push("udp_backend", Cell::text(u.backend))
        .push("udp_sink_cpu_pct", n2(u.sink_cpu_pct))
        .push("udp_block_p50_ms", n3(u.block_ms[0]))
        .push("udp_block_p99_ms", n3(u.block_ms[1]))
        .push("udp_block_max_ms", n3(u.block_ms[2]))
        .push("drain_plus_udp_cpu_pct", n2(drain_total + u.cpu_pct));
    row
}
