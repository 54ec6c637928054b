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
//! Outputs (under `--out`, rewritten by each matrix run): `matrix.csv` (every run plus a median
//! row per scenario), `matrix-median.csv`, `baseline.csv` (runs + medians), `bridge-extra.csv`,
//! `scaling.txt`, `summary.md`, `latency.svg`, `delivered.svg`, and the raw files of every run in
//! `raw/<scenario>/r<k>/`. The soak writes under `<out>/soak/` only.

use clap::Parser;
use oe_testkit::sim::BlockSize;
use oe_tools::stress::plot;
use oe_tools::stress::table::{self, Cell, Row};
use oe_tools::stress::{baseline::*, cpu::*, files::*, rows::*, run::*, scenarios::*};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "stress",
    about = "Results matrix for openephys-zmq2osc (simulator + sink in-process, bridge as a child)",
    after_help = "The full matrix (the default flags, 3 repeats) takes about 12 minutes; \
                  tools/results.sh builds and runs it into results/."
)]
struct Opt {
    /// Channel counts (0..N) of the full-rate rows (sample mode, F = 1).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16u32, 64, 256, 512, 1024, 2048])]
    channels: Vec<u32>,
    /// Output modes: sample, batch.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["sample".to_string(), "batch".to_string()])]
    modes: Vec<String>,
    /// Downsampling factors F.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1u32, 30])]
    factors: Vec<u32>,
    /// Channel counts that get every mode × factor; the other channel counts get the
    /// full-rate row (sample, F = 1) only (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    variants_at: Vec<u32>,
    /// Rows per batch in batch mode.
    #[arg(long, default_value_t = 10)]
    batch: u32,
    /// Simulator streaming time per run (s).
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Runs of every scenario and baseline; the CSVs keep every run plus a median row.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Block shape: `gui` (constant int(1024·fs/44100) = 696 at 30 kHz) or a fixed sample count.
    #[arg(long, default_value = "gui")]
    block: String,
    /// Simulator PUB high-water mark(s). 1000 = the plugin's libzmq default (faithful).
    #[arg(long, value_delimiter = ',', default_values_t = vec![100_000i32])]
    pub_hwm: Vec<i32>,
    /// Channel counts that also get a faithful row (PUB HWM 1000, sample mode, F = 1)
    /// (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1024u32])]
    faithful_at: Vec<u32>,
    /// Channel counts that also get a pinned full-rate row (the bridge runs with `--pin`)
    /// (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    pinned_at: Vec<u32>,
    /// Also run contended full-rate rows: a thread beside the simulator burns a core.
    #[arg(long)]
    contend: bool,
    /// `performance.realtime_priority` for an extra contended row per channel count (0 = none).
    #[arg(long, default_value_t = 20)]
    realtime: u8,
    /// Channel counts of the contended rows.
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    contend_at: Vec<u32>,
    /// Time of each baseline (bare ZeroMQ drain and raw UDP) per channel count and repeat (s);
    /// 0 skips the baselines.
    #[arg(long, default_value_t = 4.0)]
    baseline_seconds: f64,
    /// Output directory.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Smoke test: 16 and 256 channels, sample F = 1 only, 2 s, 1 repeat, 2 s baselines.
    #[arg(long)]
    quick: bool,
    /// Instead of the matrix: one long run (sample, F = 1) of this many seconds, sampled every
    /// 10 s, written under `<out>/soak/`.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<f64>,
    /// Channels of the soak run.
    #[arg(long, default_value_t = 256)]
    soak_channels: u32,
    /// Instead of running: print the scaling fit of an existing matrix CSV (its median rows)
    /// and write it to `scaling.txt` beside the CSV.
    #[arg(long, value_name = "MATRIX_CSV")]
    fit: Option<PathBuf>,
    /// Blocks at the start of each run whose rows get no end-to-end latency sample (start-up;
    /// delivery counts every row regardless).
    #[arg(long, default_value_t = 2)]
    latency_skip_blocks: u64,
    /// Commit recorded in the CSVs (default: `git rev-parse --short HEAD` of the workspace,
    /// plus `-dirty` when files outside results/ differ from HEAD).
    #[arg(long)]
    commit: Option<String>,
    /// Bridge binary (default: `openephys-zmq2osc` next to this executable).
    #[arg(long)]
    bridge: Option<PathBuf>,
}

fn run_soak(ctx: &Ctx, o: &Opt, block: BlockSize, block_samples: usize) -> ExitCode {
    let secs = o.soak.unwrap_or(0.0);
    let sc = Scenario {
        channels: o.soak_channels.max(1),
        mode: Mode::Sample,
        factor: 1,
        batch: 1,
        pub_hwm: *o.pub_hwm.first().unwrap_or(&100_000),
        pinned: false,
        contend: false,
        realtime: 0,
        seconds: secs,
        block,
        block_samples,
    };
    let date = cmd_out("date", &["-u", "+%Y%m%d-%H%M%S"], Path::new(".")).unwrap_or_default();
    let dir = o.out.join("soak").join(format!("soak-{date}"));
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let path = o.out.join("soak").join(format!("soak-{date}.csv"));
    let file = fs::File::create(&path).expect("create soak csv");
    let mut log = SoakLog {
        file,
        every: Duration::from_secs(10),
        header_written: false,
    };
    let r = run_scenario(ctx, &sc, "soak", &dir, Some(&mut log));
    eprintln!();
    let mut m = CsvOut::create(o.out.join("soak").join(format!("soak-{date}-matrix.csv")));
    m.write(&matrix_row(ctx, &r, None));
    let mut x = CsvOut::create(o.out.join("soak").join(format!("soak-{date}-extra.csv")));
    x.write(&extra_row(ctx, &r));
    println!(
        "soak {secs} s at {} ch: delivered {} ({} of {}), kernel drops {}, e2e p50 {} p99 {} max {} ms, \
         bridge CPU {} %, RSS {} MB{} -> {}",
        sc.channels,
        f3(r.frac(r.rows_delivered)),
        r.rows_delivered,
        r.rows_expected,
        r.rep.kernel_drops,
        f3(r.e2e[0]),
        f3(r.e2e[2]),
        f3(r.e2e[4]),
        f1(r.cpu_pct),
        f1(r.rss_mb),
        if r.error.is_empty() { String::new() } else { format!(", error: {}", r.error) },
        path.display()
    );
    if r.error.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

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
    let _ = writeln!(
        md,
        "\n## Baselines (medians)\n\n| channels | drain thread % | drain libzmq I/O % | drain total % | raw UDP % | UDP dgrams/syscall |\n|---:|---:|---:|---:|---:|---:|"
    );
    for m in &base_medians {
        let v = |c: &str| m.num(c).unwrap_or(f64::NAN);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            v("channels"),
            f1(v("drain_thread_cpu_pct")),
            f1(v("drain_zmq_io_cpu_pct")),
            f1(v("drain_cpu_pct")),
            f1(v("udp_cpu_pct")),
            f1(v("udp_datagrams_per_syscall"))
        );
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
