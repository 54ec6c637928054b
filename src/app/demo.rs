//! `--simulate N` and `--verify`: the in-process Open Ephys simulator feeding the bridge and
//! the OSC verifier listening to it (both from `oe-testkit`).

use super::Fail;
use crate::cli::{exit, Args};
use crate::config::{Config, DownsamplingMethod};
use crate::engine;
use crate::output::{BundleMode, Mode, OutputFormat};
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
        let fmt = spec.format.clone();
        let layout = verifiable(&fmt).map_err(|e| (exit::CONFIG, e))?;
        let bind = engine::resolve(&spec.host, spec.port).map_err(|e| (exit::CONFIG, e))?;
        let sc = sink::SinkConfig {
            bind,
            recv_buffer_bytes: 8 << 20,
            base_address: fmt.base_address.clone(),
            layout,
            channels: (0..n).collect(),
            wrap: sim::pattern_wrap(n - 1),
            factor: fmt.factor as u32,
            method: match fmt.method {
                DownsamplingMethod::Average => sink::Method::Average,
                // `verifiable` refused `lowpass`.
                _ => sink::Method::Decimate,
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

/// The verifier's layout for the first output, or why it cannot check that output: it knows the
/// original's sample and batch messages of every channel, averaged or decimated, and nothing
/// else on the port.
fn verifiable(fmt: &OutputFormat) -> Result<sink::Layout, String> {
    let what = if fmt.features.is_some() {
        "a features output"
    } else if fmt.method == DownsamplingMethod::Lowpass && fmt.factor > 1 {
        "`downsampling_method: lowpass` (it checks average and decimate)"
    } else if fmt.selection.is_some() {
        "a channel selection"
    } else if fmt.bundle != BundleMode::Off {
        "bundles"
    } else if fmt.sample_number {
        "sample numbers"
    } else if fmt.events || fmt.spikes || fmt.status || fmt.notices {
        "TTL events, spikes, status or notice messages on the same port"
    } else {
        return match fmt.mode {
            Mode::Sample => Ok(sink::Layout::Sample),
            Mode::Batch => Ok(sink::Layout::Batch),
            Mode::PerChannel => Err("--verify cannot check per-channel messages".into()),
            Mode::Blob => Err("--verify cannot check blob messages".into()),
        };
    };
    Err(format!(
        "--verify checks the first output, in the original's sample or batch format only; it has {what}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_takes_the_original_formats_and_names_what_it_cannot_check() {
        let plain = OutputFormat::default();
        assert!(matches!(verifiable(&plain), Ok(sink::Layout::Sample)));
        let batch = OutputFormat {
            mode: Mode::Batch,
            factor: 30,
            method: DownsamplingMethod::Decimate,
            ..Default::default()
        };
        assert!(matches!(verifiable(&batch), Ok(sink::Layout::Batch)));
        let (cfg, _) = Config::from_json_str(
            r#"{"outputs": [{"format": "features", "features": ["rms"]}, {}]}"#,
        )
        .unwrap();
        let first = engine::output_specs(&cfg).remove(0).format;
        let e = verifiable(&first).unwrap_err();
        assert!(e.contains("features"), "{e}");
        for (f, word) in [
            (
                OutputFormat {
                    factor: 30,
                    method: DownsamplingMethod::Lowpass,
                    ..Default::default()
                },
                "lowpass",
            ),
            (
                OutputFormat {
                    selection: Some(vec![1, 0]),
                    ..Default::default()
                },
                "selection",
            ),
            (
                OutputFormat {
                    bundle: BundleMode::Immediate,
                    ..Default::default()
                },
                "bundles",
            ),
            (
                OutputFormat {
                    sample_number: true,
                    ..Default::default()
                },
                "sample numbers",
            ),
            (
                OutputFormat {
                    status: true,
                    ..Default::default()
                },
                "status",
            ),
            (
                OutputFormat {
                    mode: Mode::Blob,
                    ..Default::default()
                },
                "blob",
            ),
        ] {
            let e = verifiable(&f).unwrap_err();
            assert!(e.contains(word), "{word}: {e}");
        }
    }
}
