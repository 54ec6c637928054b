//! Scenario description, the run constants and the bridge's socket options.

use oe_testkit::sim::BlockSize;
use std::fmt::Write as _;
use std::time::Duration;

/// Largest UDP payload of an IPv4 datagram.
pub const UDP_MAX: usize = 65_507;
/// Sample rate of every run.
pub const RATE: f64 = 30_000.0;
/// Requested sink receive buffer: 64 MiB, set with `SO_RCVBUFFORCE` when permitted (root /
/// CAP_NET_ADMIN), so it is not capped by `net.core.rmem_max` (4 MiB here); otherwise
/// `SO_RCVBUF` up to `rmem_max`. At 2048 ch (10 260-byte datagrams, 30 000/s) 8 MiB held
/// about 25 ms of stream, less than one time slice lost by the sink thread on a loaded
/// 2-core machine; 64 MiB (128 MiB accounted) holds a few hundred ms. The effective size and
/// whether it was forced are in `bridge-extra.csv` and `summary.md`.
pub const SINK_RCVBUF: usize = 64 << 20;
/// Part of the streaming time at the start excluded from the CPU figures (at most 30 % of a
/// short run, see [`warmup`]).
pub const CPU_WARMUP: Duration = Duration::from_millis(1500);
/// `/proc` sampling period of the bridge's threads.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// How long a bridge may take to subscribe before the row is given up.
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(15);
/// The bridge's SUB socket options (`Engine::start` in src/engine/mod.rs): `ZMQ_RCVHWM` and
/// `ZMQ_RCVBUF` from the bridge's own constants, `ZMQ_MAXMSGSIZE` 4 × max(4 ×
/// `performance.max_block_samples` (default 2048), 65 536) bytes, linger 0. The drain
/// baseline uses the same.
pub const BRIDGE_RCVHWM: i32 = zmq2osc::engine::RCVHWM;
pub const BRIDGE_RCVBUF: i32 = zmq2osc::engine::RCVBUF;
pub const BRIDGE_MAXMSGSIZE: i64 = 4 * 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sample,
    Batch,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sample => "sample",
            Mode::Batch => "batch",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub channels: u32,
    pub mode: Mode,
    pub factor: u32,
    pub batch: u32,
    pub pub_hwm: i32,
    pub pinned: bool,
    pub contend: bool,
    /// `performance.realtime_priority` of the bridge (0 = off).
    pub realtime: u8,
    pub seconds: f64,
    pub block: BlockSize,
    pub block_samples: usize,
}

impl Scenario {
    pub fn name(&self) -> String {
        let mut s = format!(
            "{}ch-{}-F{}",
            self.channels,
            self.mode.as_str(),
            self.factor
        );
        if self.mode == Mode::Batch {
            let _ = write!(s, "-b{}", self.batch);
        }
        let _ = write!(s, "-hwm{}", self.pub_hwm);
        if self.pinned {
            s.push_str("-pin");
        }
        if self.contend {
            s.push_str("-contend");
        }
        if self.realtime > 0 {
            let _ = write!(s, "-rt{}", self.realtime);
        }
        s
    }
    /// Sample mode at F = 1: exactly what the raw UDP baseline sends.
    pub fn full_rate(&self) -> bool {
        self.mode == Mode::Sample && self.factor == 1
    }
}

/// The CPU warm-up of a run of `seconds`: [`CPU_WARMUP`], or 30 % of a shorter run.
pub fn warmup(seconds: f64) -> Duration {
    CPU_WARMUP.min(Duration::from_secs_f64((seconds * 0.3).max(0.0)))
}

pub fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// OSC size of one batch message (`/data/batch/<k>`, `,i` + N·k `f`).
pub fn batch_bytes(channels: usize, k: usize) -> usize {
    let addr = format!("/data/batch/{k}");
    pad4(addr.len() + 1) + pad4(channels * k + 3) + 4 + 4 * channels * k
}
