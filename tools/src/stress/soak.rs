//! The soak: one long run (sample, F = 1) sampled every 10 s, written under `<out>/soak/`.

use super::opt::Opt;
use super::{files::*, rows::*, run::*, scenarios::*};
use oe_testkit::sim::BlockSize;
use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub fn run_soak(ctx: &Ctx, o: &Opt, block: BlockSize, block_samples: usize) -> ExitCode {
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
