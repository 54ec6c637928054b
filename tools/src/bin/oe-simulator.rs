//! `oe-simulator`: a byte-faithful Open Ephys "ZMQ Interface" publisher (the same one the
//! bridge embeds for `--simulate`). Binds PUB on the data port and answers heartbeats on
//! data port + 1, paced in real time, with optional faults. `--replay FILE` publishes a zmqcap
//! capture instead, `--recording DIR` an Open Ephys binary-format recording, both as the GUI
//! did (see `oe_testkit::replay` and `oe_testkit::recording`).

use clap::Parser;
use oe_testkit::recording::{self, RecordingSource};
use oe_testkit::replay::{ReplayConfig, Replayer, Speed};
use oe_testkit::sim::{pattern_wrap, BlockSize, Faults, Signal, SimConfig, Simulator};
use oe_testkit::zmqcap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "oe-simulator",
    about = "Open Ephys ZMQ Interface publisher (simulator, capture replay, recording player)",
    after_help = "Replay: --replay FILE publishes a zmqcap capture (.zmqcap or .zmqcap.gz, e.g. shared/fixtures) \
frame for frame with its original pacing; --recording DIR plays an Open Ephys binary-format recording \
(structure.oebin, continuous/<stream>/continuous.dat, TTL events from events/<stream>/TTL) like the GUI's \
File Reader + ZMQ Interface: 696-sample blocks at 30 kHz, channel names from the file, TTL events before \
their block. --speed X|max paces either; --loop repeats (message_num continues, sample_num goes back to the \
file index like the File Reader's loop). Heartbeats are answered on port+1 in every mode."
)]
struct Opt {
    /// Channels 0..N.
    #[arg(long, default_value_t = 32)]
    channels: u32,
    /// Sample rate (Hz).
    #[arg(long, default_value_t = 30000.0)]
    rate: f64,
    /// Block size: "gui" (int(1024·rate/44100), 696 at 30 kHz), "hw" (alternating 696/697),
    /// a number, or MIN-MAX (jittered).
    #[arg(long, default_value = "gui")]
    block: String,
    /// Interface to bind ("127.0.0.1", or "*" for all).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Data port (heartbeat on port+1).
    #[arg(long, default_value_t = 5556)]
    port: u16,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<f64>,
    /// Signal: "pattern" (ch·wrap + j mod wrap, verifiable by osc-sink), "ramp" (ch·1000+j), "sine".
    #[arg(long, default_value = "pattern")]
    signal: String,
    /// ZMQ_SNDHWM (the plugin uses libzmq's default, 1000).
    #[arg(long, default_value_t = 1000)]
    pub_hwm: i32,
    /// Start at once like the plugin, instead of waiting for the first subscriber.
    #[arg(long)]
    no_wait: bool,
    /// Send as fast as possible instead of in real time.
    #[arg(long)]
    flat_out: bool,
    /// A TTL event every K blocks.
    #[arg(long)]
    ttl_every: Option<u64>,
    /// Fault: drop each channel message with this probability.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// Fault: new acquisition (message_num back to 1) every K blocks.
    #[arg(long)]
    restart_every: Option<u64>,
    /// Fault: File Reader loop (sample_num back to start) every K blocks.
    #[arg(long)]
    loop_every: Option<u64>,
    /// Fault: from block K on, publish only channels 0..M ("K:M").
    #[arg(long)]
    change_channels: Option<String>,
    /// Publish a zmqcap capture (plain or gzip) frame for frame instead of simulating.
    #[arg(long, value_name = "FILE", conflicts_with = "recording")]
    replay: Option<std::path::PathBuf>,
    /// Play an Open Ephys binary-format recording (the folder holding structure.oebin) as the
    /// GUI's File Reader + ZMQ Interface would.
    #[arg(long, value_name = "DIR")]
    recording: Option<std::path::PathBuf>,
    /// Pace of --replay/--recording: "original" (default: the recorded timing, or real time),
    /// a factor (2 = twice as fast), or "max" (as fast as the socket takes, lossless with
    /// --pub-hwm 0).
    #[arg(long, default_value = "original", value_name = "X|max")]
    speed: String,
    /// Repeat --replay/--recording N times (no N: until killed). message_num continues,
    /// sample_num restarts at the file index (goes backwards), like the File Reader's loop.
    #[arg(long = "loop", value_name = "N", num_args = 0..=1, default_missing_value = "0")]
    loop_count: Option<u32>,
}

fn main() -> std::process::ExitCode {
    let o = Opt::parse();
    match run(o) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run_replay(o: &Opt) -> Result<(), String> {
    let speed: Speed = o.speed.parse()?;
    let loops = o.loop_count.unwrap_or(1);
    let cfg = ReplayConfig {
        host: o.host.clone(),
        port: o.port,
        speed,
        hwm: o.pub_hwm,
        wait_for_subscriber: (!o.no_wait).then_some(Duration::from_secs(365 * 86_400)),
    };
    let ctx = zmq::Context::new();
    let (rep, what) = if let Some(f) = &o.replay {
        let recs = zmqcap::read_all(f).map_err(|e| e.to_string())?;
        let n = recs.len();
        (
            Replayer::start(&ctx, Arc::new(recs), loops, cfg)?,
            format!("{} ({n} messages)", f.display()),
        )
    } else {
        let dir = o.recording.as_ref().ok_or("no --replay or --recording")?;
        let rec = Arc::new(recording::load(dir)?);
        let what = format!(
            "{} ({} channels, {} samples at {} Hz, {} TTL events)",
            dir.display(),
            rec.channels(),
            rec.samples(),
            rec.sample_rate,
            rec.ttl.len()
        );
        let src = RecordingSource::new(rec, loops);
        (Replayer::start_source(&ctx, Box::new(src), cfg)?, what)
    };
    eprintln!(
        "oe-simulator: replaying {what} on tcp://{}:{} (heartbeat {}), speed {}, {}{}",
        o.host,
        rep.port(),
        rep.port() + 1,
        o.speed,
        if loops == 0 {
            "looping".to_string()
        } else {
            format!("{loops} pass(es)")
        },
        if o.no_wait {
            ""
        } else {
            ", waiting for a subscriber"
        }
    );
    let t0 = Instant::now();
    while !rep.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if t0.elapsed().as_secs() > 0 && t0.elapsed().subsec_millis() < 200 {
            eprintln!(
                "[{:6.1}s] messages {}",
                t0.elapsed().as_secs_f64(),
                rep.sent()
            );
        }
        if o.seconds.is_some_and(|s| t0.elapsed().as_secs_f64() >= s) {
            break;
        }
    }
    let st = rep.stop();
    if let Some(e) = st.error {
        return Err(e);
    }
    eprintln!(
        "oe-simulator: done, {} messages, {} pass(es), {} heartbeats",
        st.messages, st.loops, st.heartbeats
    );
    Ok(())
}

fn run(o: Opt) -> Result<(), String> {
    if o.replay.is_some() || o.recording.is_some() {
        return run_replay(&o);
    }
    if o.channels == 0 {
        return Err("--channels must be ≥ 1".into());
    }
    let block = match o.block.as_str() {
        "gui" => BlockSize::Gui,
        "hw" => BlockSize::Alternating(696, 697),
        s => match s.split_once('-') {
            Some((a, b)) => BlockSize::Jitter {
                min: a.parse().map_err(|_| format!("bad --block {s}"))?,
                max: b.parse().map_err(|_| format!("bad --block {s}"))?,
            },
            None => BlockSize::Fixed(s.parse().map_err(|_| format!("bad --block {s}"))?),
        },
    };
    let signal = match o.signal.as_str() {
        "pattern" => Signal::Pattern {
            wrap: pattern_wrap(o.channels - 1),
        },
        "ramp" => Signal::Ramp,
        "sine" => Signal::Sine,
        s => return Err(format!("unknown --signal {s}")),
    };
    let channel_change = match &o.change_channels {
        None => None,
        Some(s) => {
            let (k, m) = s.split_once(':').ok_or("--change-channels takes K:M")?;
            let k: u64 = k.parse().map_err(|_| "bad K in --change-channels")?;
            let m: u32 = m.parse().map_err(|_| "bad M in --change-channels")?;
            Some((k, (0..m).collect()))
        }
    };
    let cfg = SimConfig {
        bind_host: o.host.clone(),
        data_port: o.port,
        channels: (0..o.channels).collect(),
        sample_rate: o.rate,
        block,
        signal,
        duration: o.seconds.map(Duration::from_secs_f64),
        realtime: !o.flat_out,
        send_hwm: o.pub_hwm,
        wait_for_subscriber: !o.no_wait,
        ttl_every_blocks: o.ttl_every,
        faults: Faults {
            drop_probability: o.drop,
            restart_every_blocks: o.restart_every,
            loop_every_blocks: o.loop_every,
            channel_change,
            ..Default::default()
        },
        ..Default::default()
    };
    let ctx = zmq::Context::new();
    let sim = Simulator::start(cfg, &ctx, None)?;
    eprintln!(
        "oe-simulator: {} channels at {} Hz on {} (heartbeat {}){}",
        o.channels,
        o.rate,
        sim.data_endpoint(),
        sim.heartbeat_endpoint().unwrap_or_else(|| "off".into()),
        if o.no_wait {
            ""
        } else {
            ", waiting for a subscriber"
        }
    );
    let t0 = Instant::now();
    let mut last = 0u64;
    while !sim.is_finished() {
        std::thread::sleep(Duration::from_secs(1));
        let s = sim.stats();
        eprintln!(
            "[{:6.1}s] blocks {} (+{}/s) data msgs {} dropped-by-fault {} late blocks {} (max {:.2} ms) heartbeats {}",
            t0.elapsed().as_secs_f64(),
            s.blocks,
            s.blocks - last,
            s.data_messages,
            s.dropped_by_fault,
            s.late_blocks,
            s.max_lateness.as_secs_f64() * 1e3,
            s.heartbeats_answered
        );
        last = s.blocks;
    }
    let s = sim.stop();
    if let Some(e) = s.error {
        return Err(e);
    }
    eprintln!(
        "oe-simulator: done, {} blocks, {} late",
        s.blocks, s.late_blocks
    );
    Ok(())
}
