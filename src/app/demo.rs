//! `--simulate N` and `--verify`: the in-process Open Ephys simulator feeding the bridge and
//! the OSC verifier listening to it (both from `oe-testkit`).

use super::Fail;
use crate::cli::{exit, Args};
use crate::config::{Config, DownsamplingMethod};
use crate::engine;
use crate::output::Mode;
use oe_testkit::{sim, sink};
use std::sync::Arc;

/// The simulator and the verifier of one run (either may be absent).
pub struct Demo {
    /// The simulator (`--simulate`).
    pub simulator: Option<sim::Simulator>,
    /// The verifier (`--verify`).
    pub verifier: Option<sink::Sink>,
    _ctx: zmq::Context,
}

/// Starts what `args` ask for. The simulator binds on 127.0.0.1 at the config's data port.
pub fn start(args: &Args, cfg: &Config) -> Result<Demo, Fail> {
    let zctx = zmq::Context::new();
    let clock = Arc::new(sink::BlockClock::new(4096));
    let simulator = match args.simulate {
        None => None,
        Some(n) => {
            if n == 0 || n > cfg.performance.max_channels {
                return Err((
                    exit::CONFIG,
                    format!(
                        "--simulate takes 1..={} channels (performance.max_channels)",
                        cfg.performance.max_channels
                    ),
                ));
            }
            let block = match args.sim_block_size {
                Some(b) => sim::BlockSize::Fixed(b),
                None => sim::BlockSize::Gui,
            };
            let sc = sim::SimConfig {
                bind_host: "127.0.0.1".into(),
                data_port: cfg.zmq.data_port,
                channels: (0..n).collect(),
                sample_rate: args.sim_rate,
                block,
                signal: sim::Signal::Pattern {
                    wrap: sim::pattern_wrap(n - 1),
                },
                wait_for_subscriber: true,
                ..Default::default()
            };
            let c = clock.clone();
            let observer: sim::BlockObserver = Box::new(move |sn, ns, _, t| c.record(sn, ns, t));
            Some(
                sim::Simulator::start(sc, &zctx, Some(observer))
                    .map_err(|e| (exit::STARTUP, format!("simulator: {e}")))?,
            )
        }
    };
    let verifier = if args.verify {
        let Some(n) = args.simulate else {
            return Err((exit::CONFIG, "--verify needs --simulate".into()));
        };
        let spec = engine::output_specs(cfg).remove(0);
        let fmt = spec.format;
        let layout = match fmt.mode {
            Mode::Sample => sink::Layout::Sample,
            Mode::Batch => sink::Layout::Batch,
            Mode::PerChannel | Mode::Blob => {
                return Err((
                    exit::CONFIG,
                    "--verify checks sample and batch formats only".into(),
                ))
            }
        };
        let bind = engine::resolve(&spec.host, spec.port).map_err(|e| (exit::CONFIG, e))?;
        let sc = sink::SinkConfig {
            bind,
            recv_buffer_bytes: 8 << 20,
            base_address: cfg.osc.base_address.clone(),
            layout,
            channels: (0..n).collect(),
            wrap: sim::pattern_wrap(n - 1),
            factor: fmt.factor as u32,
            method: match fmt.method {
                DownsamplingMethod::Average => sink::Method::Average,
                DownsamplingMethod::Decimate => sink::Method::Decimate,
                DownsamplingMethod::Lowpass => {
                    return Err((
                        exit::CONFIG,
                        "--verify checks average and decimate only".into(),
                    ))
                }
            },
            block_clock: Some(clock.clone()),
        };
        Some(sink::Sink::start(sc).map_err(|e| {
            (
                exit::STARTUP,
                format!("verifier cannot listen on {bind}: {e}"),
            )
        })?)
    } else {
        None
    };
    Ok(Demo {
        simulator,
        verifier,
        _ctx: zctx,
    })
}
