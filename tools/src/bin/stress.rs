//! `stress`: the results matrix from HEAD by one command.
//!
//! For each scenario the simulator ([`Simulator`]) and the verifying sink ([`Sink`]) run in this
//! process and share one [`BlockClock`], so end-to-end latency (simulator send of a block's last
//! message → datagram received) uses one monotonic clock. The bridge runs as a child process
//! (the `openephys-zmq2osc` binary next to this one) on fresh ports; this process reads its
//! CPU clock and samples `/proc/PID/task` for the per-thread split. When the simulator is done
//! and the sink has every row (or stopped receiving for 500 ms), the bridge gets SIGTERM, stops
//! gracefully and writes its **final JSON stats object** (`--stats-json`), which is where every
//! bridge counter in the results comes from (never the text report).
//!
//! Each repeat also measures two baselines per channel count: a **bare ZeroMQ drain** (a plain
//! SUB with the bridge's socket options receiving the same simulator stream into a buffer) and
//! a **raw UDP sender** (the same datagrams as sample mode, same GSO syscalls, no ZMQ).
//!
//! The sink requests a 64 MiB receive buffer with `SO_RCVBUFFORCE` (falling back to
//! `SO_RCVBUF`, capped by `net.core.rmem_max`); `bridge-extra.csv` records what was granted
//! (`sink_rcvbuf`, `sink_rcvbuf_forced`), the sink thread's CPU (`sink_cpu_pct`) and this
//! process's (`instrument_cpu_pct`: simulator, its libzmq threads, sink), and `summary.md`
//! has a per-row table of who fell behind (simulator late blocks, upstream gaps, sink kernel
//! drops). `stress --replot DIR` rewrites the stage breakdown of an existing results directory.
//!
//! Outputs (under `--out`, rewritten by each matrix run): `matrix.csv` (every run plus a median
//! row per scenario), `matrix-median.csv`, `baseline.csv` (runs + medians), `bridge-extra.csv`,
//! `scaling.txt`, `summary.md`, `latency.svg`, `delivered.svg`, `stages.csv` and `stages.svg`
//! (the stage-by-stage latency of the full-rate rows, also a table in `summary.md`), and the raw files of every run in
//! `raw/<scenario>/r<k>/`. The soak writes under `<out>/soak/` only.

use clap::Parser;
use oe_tools::stress::table::{self, Cell, Row};
use oe_tools::stress::{
    baseline::*, cpu::*, files::*, opt::Opt, rows::*, run::*, scenarios::*, soak::run_soak,
};
use oe_tools::stress::{plot, stages};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[allow(clippy::too_many_lines)]
fn main() -> ExitCode {
    let mut o = Opt::parse();
    if let Some(csv) = &o.fit {
        let out = csv.with_file_name("scaling.txt");
        return match write_scaling(csv, &out) {
            Ok(rep) => {
                print!("{rep}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = &o.replot {
        return match stages::write_stages(dir) {
            Ok((md, warnings)) => {
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
                let summary = dir.join("summary.md");
                if let Ok(old) = fs::read_to_string(&summary) {
                    let _ = fs::write(&summary, stages::replace_summary_section(&old, &md));
                }
                print!("{md}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if o.quick {
        o.channels = vec![16, 256];
        o.variants_at = vec![];
        o.faithful_at = vec![];
        o.pinned_at = vec![];
        o.seconds = 2.0;
        o.baseline_seconds = 2.0;
        o.repeat = 1;
    }
    let (block, block_samples) = match parse_block(&o.block) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut modes = Vec::new();
    for m in &o.modes {
        match m.as_str() {
            "sample" => modes.push(Mode::Sample),
            "batch" => modes.push(Mode::Batch),
            m => {
                eprintln!("error: unknown mode {m} (sample, batch)");
                return ExitCode::from(2);
            }
        }
    }
    if o.channels.contains(&0) || o.factors.contains(&0) || o.batch == 0 || o.repeat == 0 {
        eprintln!("error: channels, factors, --batch and --repeat must be > 0");
        return ExitCode::from(2);
    }
    if !(o.seconds.is_finite() && o.seconds >= 1.0) {
        eprintln!("error: --seconds must be at least 1");
        return ExitCode::from(2);
    }
    let bridge = o.bridge.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("openephys-zmq2osc")))
            .unwrap_or_else(|| PathBuf::from("openephys-zmq2osc"))
    });
    if !bridge.exists() {
        eprintln!(
            "error: bridge binary {} not found (cargo build --release -p openephys-zmq2osc)",
            bridge.display()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = fs::create_dir_all(&o.out) {
        eprintln!("error: cannot create {}: {e}", o.out.display());
        return ExitCode::from(2);
    }
    let ctx = Ctx {
        bridge,
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: o.commit.clone().unwrap_or_else(head_commit),
        tck: clk_tck(),
        latency_skip_blocks: o.latency_skip_blocks,
    };
    if o.soak.is_some() {
        return run_soak(&ctx, &o, block, block_samples);
    }

    // The scenarios.
    let mk = |channels, mode, factor, pub_hwm, pinned, contend| Scenario {
        channels,
        mode,
        factor,
        batch: if mode == Mode::Batch { o.batch } else { 1 },
        pub_hwm,
        pinned,
        contend,
        realtime: 0,
        seconds: o.seconds,
        block: block.clone(),
        block_samples,
    };
    let mut scenarios = Vec::new();
    let mut skipped = Vec::new();
    for &ch in &o.channels {
        for &mode in &modes {
            for &f in &o.factors {
                let full = mode == Mode::Sample && f == 1;
                if !full && !o.variants_at.contains(&ch) {
                    continue;
                }
                for &hwm in &o.pub_hwm {
                    let sc = mk(ch, mode, f, hwm, false, false);
                    if mode == Mode::Batch && batch_bytes(ch as usize, o.batch as usize) > UDP_MAX {
                        skipped.push(format!(
                            "{}: a batch of {} rows x {ch} ch is {} B > {UDP_MAX} B (one UDP datagram); the bridge refuses it by design",
                            sc.name(),
                            o.batch,
                            batch_bytes(ch as usize, o.batch as usize)
                        ));
                        continue;
                    }
                    scenarios.push(sc);
                }
            }
        }
        let hwm = *o.pub_hwm.first().unwrap_or(&100_000);
        if o.faithful_at.contains(&ch) && !o.pub_hwm.contains(&1000) {
            scenarios.push(mk(ch, Mode::Sample, 1, 1000, false, false));
        }
        if o.pinned_at.contains(&ch) {
            scenarios.push(mk(ch, Mode::Sample, 1, hwm, true, false));
        }
        if o.contend && o.contend_at.contains(&ch) {
            scenarios.push(mk(ch, Mode::Sample, 1, hwm, false, true));
            // The same competing publisher, the bridge on the real-time scheduler
            // (`performance.realtime_priority`; the row's stderr says if it was refused).
            if o.realtime > 0 {
                let mut sc = mk(ch, Mode::Sample, 1, hwm, false, true);
                sc.realtime = o.realtime;
                scenarios.push(sc);
            }
        }
    }
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let mut baseline_channels: Vec<u32> = scenarios
        .iter()
        .filter(|s| s.full_rate())
        .map(|s| s.channels)
        .collect();
    baseline_channels.sort_unstable();
    baseline_channels.dedup();
    if o.baseline_seconds <= 0.0 {
        baseline_channels.clear();
    }
    let per_repeat: f64 = scenarios.iter().map(|s| s.seconds + 2.5).sum::<f64>()
        + baseline_channels.len() as f64 * (2.0 * o.baseline_seconds + 1.0);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!(
        "stress: commit {}, {} scenarios + {} baseline channel counts, {} repeat(s), about {} in all",
        ctx.commit,
        scenarios.len(),
        baseline_channels.len(),
        o.repeat,
        fmt_dur(per_repeat * f64::from(o.repeat))
    );

    let t0 = Instant::now();
    let mut matrix = CsvOut::create(o.out.join("matrix.csv"));
    let mut extra = CsvOut::create(o.out.join("bridge-extra.csv"));
    let mut base_csv = CsvOut::create(o.out.join("baseline.csv"));
    let raw = o.out.join("raw");
    let _ = fs::remove_dir_all(&raw);
    // rows[scenario][repeat], base_rows[channel index][repeat]
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); scenarios.len()];
    let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); scenarios.len()];
    let mut base_rows: Vec<Vec<Row>> = vec![Vec::new(); baseline_channels.len()];
    let hwm = *o.pub_hwm.first().unwrap_or(&100_000);
    for k in 1..=o.repeat {
        let run = k.to_string();
        // Baselines of this repeat, per channel count: (drain CPU, raw UDP CPU).
        let mut base: Vec<(u32, (f64, f64))> = Vec::new();
        for (bi, &ch) in baseline_channels.iter().enumerate() {
            eprint!(
                "\r\x1b[2K[run {k}/{}] baselines {ch} ch  elapsed {}",
                o.repeat,
                fmt_dur(t0.elapsed().as_secs_f64())
            );
            let d = run_drain(ch, &block, o.baseline_seconds, hwm);
            let u = run_udp_baseline(ch, block_samples, o.baseline_seconds);
            let row = baseline_row(&ctx, ch, &run, o.baseline_seconds, &d, &u);
            if let Err(e) = &d {
                eprintln!("\ndrain {ch} ch run {run}: {e}");
            }
            base.push((
                ch,
                (row.num("drain_cpu_pct").unwrap_or(f64::NAN), u.cpu_pct),
            ));
            base_csv.write(&row);
            base_rows[bi].push(row);
        }
        for (i, sc) in scenarios.iter().enumerate() {
            let dir = raw.join(sc.name()).join(format!("r{k}"));
            let r = run_scenario(&ctx, sc, &run, &dir, None);
            let b = base.iter().find(|b| b.0 == sc.channels).map(|b| b.1);
            let row = matrix_row(&ctx, &r, b);
            matrix.write(&row);
            extra.write(&extra_row(&ctx, &r));
            eprintln!(
                "\r\x1b[2K[run {k}/{}] {}: delivered {}  e2e p50 {} p99 {} ms  CPU {} % (zmq_rx {}, osc_tx {}), ratio {}{}  elapsed {}",
                o.repeat,
                sc.name(),
                f3(r.frac(r.rows_delivered)),
                f3(r.e2e[0]),
                f3(r.e2e[2]),
                f1(r.cpu_pct),
                f1(r.rx_cpu_pct),
                f1(r.tx_cpu_pct),
                row.num("cpu_ratio").map_or("-".into(), f3),
                if r.error.is_empty() { String::new() } else { format!("  ERROR {}", r.error) },
                fmt_dur(t0.elapsed().as_secs_f64())
            );
            rows[i].push(row);
            results[i].push(r);
        }
    }

    // Median rows.
    let mut medians = Vec::new();
    for r in &rows {
        if let Some(m) = table::median_row(r, "run", "median") {
            if o.repeat > 1 {
                matrix.write(&m);
            }
            medians.push(m);
        }
    }
    let mut median_csv = CsvOut::create(o.out.join("matrix-median.csv"));
    for m in &medians {
        median_csv.write(m);
    }
    let mut base_medians = Vec::new();
    for r in &base_rows {
        if let Some(m) = table::median_row(r, "run", "median") {
            if o.repeat > 1 {
                base_csv.write(&m);
            }
            base_medians.push(m);
        }
    }

    // Plots and the scaling fit, from the median rows.
    let lat: Vec<(f64, [f64; 4])> = medians
        .iter()
        .zip(&scenarios)
        .filter(|(_, s)| s.full_rate() && s.pub_hwm != 1000 && !s.pinned && !s.contend)
        .map(|(m, s)| {
            let v = |c: &str| m.num(c).unwrap_or(f64::NAN);
            (
                f64::from(s.channels),
                [
                    v(E2E_COLS[0]),
                    v(E2E_COLS[1]),
                    v(E2E_COLS[2]),
                    v(E2E_COLS[3]),
                ],
            )
        })
        .collect();
    if let Err(e) = plot::plot_latency(&o.out.join("latency.svg"), &lat) {
        eprintln!("latency.svg not written: {e}");
    }
    let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (m, s) in medians.iter().zip(&scenarios) {
        let mut key = format!("{} F={}", s.mode.as_str(), s.factor);
        if s.pub_hwm == 1000 {
            key.push_str(" (PUB HWM 1000, faithful)");
        }
        if s.pinned {
            key.push_str(" pinned");
        }
        if s.realtime > 0 {
            let _ = write!(key, " realtime {}", s.realtime);
        }
        if s.contend {
            key.push_str(" contended");
        }
        let p = (
            f64::from(s.channels),
            m.num("delivered").unwrap_or(f64::NAN),
        );
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    if let Err(e) = plot::plot_delivered(&o.out.join("delivered.svg"), &groups) {
        eprintln!("delivered.svg not written: {e}");
    }
    let scaling = match write_scaling(&o.out.join("matrix-median.csv"), &o.out.join("scaling.txt"))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scaling.txt not written: {e}");
            format!("(no fit: {e})\n")
        }
    };

    // Summary (also written as summary.md for the README).
    let mut md = String::new();
    let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"], Path::new(".")).unwrap_or_default();
    let uname = cmd_out("uname", &["-r"], Path::new(".")).unwrap_or_default();
    let ncpu = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        md,
        "# Results of commit {}\n\n{date}, {ncpu} CPUs, kernel {uname}, {} repeat(s) of {} s per row, \
         baselines {} s. Command:\n\n```sh\n{command}\n```\n",
        ctx.commit, o.repeat, o.seconds, o.baseline_seconds
    );
    let _ = writeln!(
        md,
        "## Medians (of {} runs)\n\n| scenario | delivered | clean | e2e p50 / p99 ms | bridge_added p99 ms | bridge CPU % | zmq_rx % | osc_tx % | drain + UDP % | ratio | RSS MB | errors |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        o.repeat
    );
    for (m, res) in medians.iter().zip(&results) {
        let v = |c: &str| m.num(c).unwrap_or(f64::NAN);
        let errs = res.iter().filter(|r| !r.error.is_empty()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.get("scenario").map_or(String::new(), |c| match c {
                Cell::Text(t) => t.clone(),
                _ => String::new(),
            }),
            f3(v("delivered")),
            f3(v("clean")),
            f3(v("e2e_p50_ms")),
            f3(v("e2e_p99_ms")),
            f3(v("bridge_p99_ms")),
            f1(v("bridge_cpu_pct")),
            f1(v("zmq_rx_cpu_pct")),
            f1(v("osc_tx_cpu_pct")),
            f1(v("drain_cpu_pct") + v("udp_baseline_cpu_pct")),
            f3(v("cpu_ratio")),
            f1(v("bridge_rss_mb")),
            if errs == 0 {
                "0".to_string()
            } else {
                format!("{errs} of {}", res.len())
            }
        );
    }
    match stages::write_stages(&o.out) {
        Ok((table, warnings)) => {
            for w in &warnings {
                eprintln!("stages: {w}");
            }
            let _ = write!(md, "\n{}\n\n{table}", stages::SUMMARY_HEADING);
        }
        Err(e) => eprintln!("stages.csv / stages.svg not written: {e}"),
    }
    let _ = writeln!(
        md,
        "\n## Baselines (medians)\n\n| channels | drain thread % | drain libzmq I/O % | drain total % | raw UDP % | UDP dgrams/syscall | raw UDP block p50 / p99 / max ms |\n|---:|---:|---:|---:|---:|---:|---|"
    );
    for m in &base_medians {
        let v = |c: &str| m.num(c).unwrap_or(f64::NAN);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.3} / {:.3} / {:.3} |",
            v("channels"),
            f1(v("drain_thread_cpu_pct")),
            f1(v("drain_zmq_io_cpu_pct")),
            f1(v("drain_cpu_pct")),
            f1(v("udp_cpu_pct")),
            f1(v("udp_datagrams_per_syscall")),
            v("udp_block_p50_ms"),
            v("udp_block_p99_ms"),
            v("udp_block_max_ms")
        );
    }
    let all: Vec<&RunResult> = results.iter().flatten().collect();
    if let (Some(lo), Some(hi)) = (
        all.iter().map(|r| r.rcvbuf).min(),
        all.iter().map(|r| r.rcvbuf).max(),
    ) {
        let forced = all.iter().filter(|r| r.rcvbuf_forced).count();
        let sink_cpu = all
            .iter()
            .map(|r| r.sink_cpu_pct)
            .filter(|v| v.is_finite())
            .fold(f64::NAN, f64::max);
        let _ = writeln!(
            md,
            "\n## The instrument\n\nSink receive buffer: requested {} MiB, effective (as the kernel \
             reports it, twice the granted size) {}{} MiB, set with SO_RCVBUFFORCE in {forced} of {} \
             runs (otherwise SO_RCVBUF, capped by net.core.rmem_max). Sink thread CPU at most {} % \
             of one core; kernel drops at the sink in all runs: {}.",
            SINK_RCVBUF >> 20,
            if lo == hi { String::new() } else { format!("{} to ", lo >> 20) },
            hi >> 20,
            all.len(),
            f1(sink_cpu),
            all.iter().map(|r| r.rep.kernel_drops).sum::<u64>()
        );
        let _ = writeln!(
            md,
            "\nPer row (medians): who drops or falls behind. `sim late` = blocks the simulator \
             published behind its real-time schedule (the publisher could not keep up); \
             `sim rate` = samples published ÷ (streaming time × 30 kHz), below 1 when it \
             fell behind; `upstream` = ZMQ messages missing by `message_num` at the bridge; `kernel drops` = \
             the sink's socket overflowed; instrument = this process (simulator, its libzmq \
             threads, sink, and in `-contend` rows the thread burning a core).\n\n| scenario | sim rate (x real time) | sim late / blocks | sim max late ms | upstream | kernel drops | sink CPU % | instrument CPU % | bridge CPU % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for res in &results {
            let Some(r0) = res.first() else { continue };
            let med = |f: &dyn Fn(&RunResult) -> f64| {
                oe_tools::stress::calc::median(&res.iter().map(f).collect::<Vec<_>>())
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
                r0.sc.name(),
                f3(med(&|r| r.sim_rate())),
                med(&|r| r.sim_late_blocks as f64),
                med(&|r| r.sim_blocks as f64),
                f1(med(&|r| r.sim_max_late_ms)),
                med(&|r| r
                    .counters
                    .map_or(f64::NAN, |c| c.upstream_missing_msgs as f64)),
                med(&|r| r.rep.kernel_drops as f64),
                f1(med(&|r| r.sink_cpu_pct)),
                f1(med(&|r| r.instrument_cpu_pct)),
                f1(med(&|r| r.cpu_pct)),
            );
        }
    }
    let _ = writeln!(md, "\n## Scaling\n\n```\n{}```", scaling);
    for s in &skipped {
        let _ = writeln!(md, "\nskipped {s}");
    }
    let _ = fs::write(o.out.join("summary.md"), &md);
    println!("{md}");
    let failed: usize = results
        .iter()
        .flatten()
        .filter(|r| !r.error.is_empty())
        .count();
    eprintln!(
        "done in {}: {} run(s), {failed} with errors (see the `error` column)",
        fmt_dur(t0.elapsed().as_secs_f64()),
        results.iter().map(Vec::len).sum::<usize>()
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
