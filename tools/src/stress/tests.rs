use super::baseline::*;
use super::rows::*;
use super::run::*;
use super::scenarios::*;
use crate::stress::stats::BridgeCounters;
use crate::stress::table::{self, Cell};
use oe_testkit::sim::BlockSize;
use oe_testkit::sink::SinkReport;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn sc(mode: Mode, factor: u32, pinned: bool) -> Scenario {
    Scenario {
        channels: 256,
        mode,
        factor,
        batch: if mode == Mode::Batch { 10 } else { 1 },
        pub_hwm: 100_000,
        pinned,
        contend: false,
        realtime: 0,
        seconds: 5.0,
        block: BlockSize::Gui,
        block_samples: 696,
    }
}

fn result(s: Scenario) -> RunResult {
    RunResult {
        sc: s,
        run: "1".into(),
        exit: 0,
        error: String::new(),
        counters: Some(BridgeCounters {
            sent: 150_000,
            syscalls: 2_500,
            upstream_missing_msgs: 3,
            ..BridgeCounters::default()
        }),
        final_rss_mb: 50.0,
        samples_published: 150_336,
        rows_expected: 150_336,
        rows_delivered: 149_640,
        datagrams_per_s: 30_000.0,
        rep: SinkReport::default(),
        e2e: [1.0, 2.0, 3.0, 4.0, 5.0],
        bridge_added: [0.5, 0.6, 0.7, 0.8, 0.9],
        cpu_pct: 9.0,
        rx_cpu_pct: 3.0,
        tx_cpu_pct: 4.0,
        rss_mb: 51.0,
        fds: 28,
        threads: 6,
        window_s: 3.5,
        sim_blocks: 216,
        sim_data_msgs: 55_296,
        sim_late_blocks: 0,
        sim_max_late_ms: 0.1,
        rcvbuf: 128 << 20,
        rcvbuf_forced: true,
        sink_cpu_pct: 12.5,
        instrument_cpu_pct: 60.0,
    }
}

fn ctx() -> Ctx {
    Ctx {
        bridge: PathBuf::from("b"),
        version: "0.1.0".into(),
        commit: "abc1234-dirty".into(),
        tck: 100.0,
        latency_skip_blocks: 2,
    }
}

#[test]
fn matrix_columns() {
    let r = result(sc(Mode::Sample, 1, true));
    let row = matrix_row(&ctx(), &r, Some((2.0, 1.0)));
    let header = row.header();
    assert_eq!(
        table::split_csv(&row.line()).len(),
        table::split_csv(&header).len()
    );
    for c in [
        "scenario",
        "run",
        "commit",
        "pinned",
        "contend",
        "bridge_exit",
        "error",
        "rows_expected",
        "delivered",
        "zmq_rx_cpu_pct",
        "osc_tx_cpu_pct",
        "drain_cpu_pct",
        "udp_baseline_cpu_pct",
        "cpu_ratio",
    ] {
        assert!(header.split(',').any(|h| h == c), "missing column {c}");
    }
    assert_eq!(row.get("commit"), Some(&Cell::text("abc1234-dirty")));
    assert_eq!(row.get("pinned"), Some(&Cell::text("yes")));
    assert_eq!(
        row.get("scenario"),
        Some(&Cell::text("256ch-sample-F1-hwm100000-pin"))
    );
    // Every published row is expected: 696 missing rows are a loss, not excused.
    assert_eq!(row.num("lost"), Some(696.0));
    assert!((row.num("delivered").unwrap() - 149_640.0 / 150_336.0).abs() < 1e-6);
    assert_eq!(row.num("cpu_ratio"), Some(3.0));
    assert_eq!(row.num("datagrams_per_syscall"), Some(60.0));
    assert_eq!(row.num("upstream_missing_msgs"), Some(3.0));
    // The baselines send what sample F = 1 sends: no ratio for other rows.
    let b = matrix_row(
        &ctx(),
        &result(sc(Mode::Batch, 30, false)),
        Some((2.0, 1.0)),
    );
    assert_eq!(b.num("cpu_ratio"), None);
    assert_eq!(b.num("drain_cpu_pct"), None);
    assert_eq!(b.header(), header);
    // A failed run: counters empty, not zero.
    let mut f = result(sc(Mode::Sample, 1, false));
    f.counters = None;
    f.exit = 2;
    f.error =
        "the bridge exited at start-up with code 2; stderr: error: unexpected argument '--pin'"
            .into();
    let fr = matrix_row(&ctx(), &f, None);
    assert_eq!(fr.num("upstream_missing_msgs"), None);
    assert_eq!(fr.header(), header);
    assert_eq!(
        table::split_csv(&fr.line()).len(),
        header.split(',').count()
    );
}

#[test]
fn bridge_command_line() {
    let a = bridge_args(
        &sc(Mode::Sample, 1, true),
        Path::new("c.json"),
        Path::new("d"),
        66.0,
    );
    assert!(a.contains(&"--pin".to_string()) && !a.contains(&"--no-pin".to_string()));
    let i = a.iter().position(|x| x == "--stats-json").unwrap();
    assert_eq!(a[i + 1], "d/stats.jsonl");
    let i = a.iter().position(|x| x == "--stats-interval").unwrap();
    assert!(
        a[i + 1].parse::<f64>().unwrap() > 66.0,
        "JSON stats must be on"
    );
    let a = bridge_args(
        &sc(Mode::Sample, 1, false),
        Path::new("c.json"),
        Path::new("d"),
        66.0,
    );
    assert!(a.contains(&"--no-pin".to_string()));
    assert!(bridge_config(&sc(Mode::Sample, 1, true), 1, 2).contains("\"pin_threads\": true"));
}

/// A bridge that exits at start-up (here: a script rejecting its flags, as a bridge without
/// `--pin` does) ends the row at once with its exit code and stderr, no hang, no counters.
#[test]
fn bridge_failing_at_start_up_is_reported() {
    let dir = std::env::temp_dir().join(format!("stress-startup-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let script = dir.join("fake-bridge.sh");
    fs::write(
        &script,
        "#!/bin/sh\necho \"error: unexpected argument '--pin' found\" >&2\nexit 2\n",
    )
    .unwrap();
    let mut perm = fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&script, perm).unwrap();
    let mut c = ctx();
    c.bridge = script;
    let mut s = sc(Mode::Sample, 1, true);
    s.channels = 8;
    let t0 = Instant::now();
    let r = run_scenario(&c, &s, "1", &dir.join("run"), None);
    assert!(
        t0.elapsed() < SUBSCRIBE_TIMEOUT,
        "waited for the subscribe timeout"
    );
    assert_eq!(r.exit, 2);
    assert!(
        r.error
            .contains("the bridge exited at start-up with code 2")
            && r.error.contains("unexpected argument '--pin'"),
        "{}",
        r.error
    );
    assert!(r.counters.is_none());
    assert_eq!(r.rows_expected, 0);
    let row = matrix_row(&c, &r, None);
    assert_eq!(row.num("delivered"), None);
    let _ = fs::remove_dir_all(&dir);
}

/// The drain receives every message of a short real stream on loopback and measures a CPU.
#[test]
fn drain_receives_the_whole_stream() {
    let d = run_drain(8, &BlockSize::Fixed(300), 1.5, 100_000).unwrap();
    assert_eq!(d.received, 1.0);
    assert!(d.thread_cpu_pct.is_finite() && d.thread_cpu_pct >= 0.0);
    assert!(d.io_cpu_pct.is_finite() && d.io_cpu_pct >= 0.0);
    assert!(d.msgs_per_s > 0.0 && d.mb_per_s > 0.0);
}

#[test]
fn extra_and_baseline_columns() {
    let r = result(sc(Mode::Sample, 1, false));
    // 150 336 samples in 5 s at 30 kHz.
    assert!((r.sim_rate() - 1.00224).abs() < 1e-9, "{}", r.sim_rate());
    let e = extra_row(&ctx(), &r);
    assert_eq!(
        table::split_csv(&e.line()).len(),
        e.header().split(',').count()
    );
    assert_eq!(e.num("sink_rcvbuf"), Some(f64::from(128u32 << 20)));
    assert_eq!(e.num("sink_cpu_pct"), Some(12.5));
    assert!(e.header().contains("sink_rcvbuf_forced,"));
    let u = UdpBaseline {
        bytes: 1044,
        dgrams_per_s: 30_000.0,
        cpu_pct: 3.0,
        per_syscall: 58.0,
        delivered: 1.0,
        kernel_drops: 0,
        backend: "gso",
        block_ms: [0.7, 1.4, 2.0],
        sink_cpu_pct: 5.0,
    };
    let d = Ok(Drain {
        msgs_per_s: 11_000.0,
        mb_per_s: 31.0,
        thread_cpu_pct: 1.5,
        io_cpu_pct: 2.5,
        received: 1.0,
    });
    let b = baseline_row(&ctx(), 256, "1", 4.0, &d, &u);
    assert_eq!(b.num("drain_cpu_pct"), Some(4.0));
    assert_eq!(b.num("drain_plus_udp_cpu_pct"), Some(7.0));
    assert_eq!(b.num("udp_block_p99_ms"), Some(1.4));
    let b2 = baseline_row(&ctx(), 256, "2", 4.0, &Err("x, y".into()), &u);
    assert_eq!(b2.header(), b.header());
    assert_eq!(b2.num("drain_cpu_pct"), None);
    assert_eq!(
        table::split_csv(&b2.line()).len(),
        b.header().split(',').count()
    );
}
