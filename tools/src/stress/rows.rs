//! The CSV rows of a run (`matrix.csv`, `bridge-extra.csv`).

use super::run::*;
use super::scenarios::*;
use crate::stress::calc;
use crate::stress::stats::BridgeCounters;
use crate::stress::table::{Cell, Row};

pub fn yes_no(b: bool) -> Cell {
    Cell::text(if b { "yes" } else { "no" })
}

pub fn n3(x: f64) -> Cell {
    Cell::Num(x, 3)
}

pub fn n2(x: f64) -> Cell {
    Cell::Num(x, 2)
}

/// One `matrix.csv` row. `base`: that repeat's (drain CPU %, raw UDP CPU %) at this channel
/// count, used for full-rate rows only (the baselines send what sample mode at F = 1 sends).
pub fn matrix_row(ctx: &Ctx, r: &RunResult, base: Option<(f64, f64)>) -> Row {
    let c = r.counters;
    let cnt = |f: fn(&BridgeCounters) -> u64| {
        c.as_ref()
            .map_or(Cell::Num(f64::NAN, 0), |c| Cell::Int(f(c)))
    };
    let (drain, udp) = match base {
        Some(b) if r.sc.full_rate() => b,
        _ => (f64::NAN, f64::NAN),
    };
    let sc = &r.sc;
    let mut row = Row::default();
    row.push("scenario", Cell::text(sc.name()))
        .push("run", Cell::text(&r.run))
        .push("commit", Cell::text(&ctx.commit))
        .push("version", Cell::text(&ctx.version))
        .push("channels", Cell::Int(sc.channels.into()))
        .push("mode", Cell::text(sc.mode.as_str()))
        .push("factor", Cell::Int(sc.factor.into()))
        .push(
            "batch",
            Cell::Int(if sc.mode == Mode::Batch { sc.batch } else { 1 }.into()),
        )
        .push("pub_hwm", Cell::Int(sc.pub_hwm.max(0) as u64))
        .push("pinned", yes_no(sc.pinned))
        .push("contend", yes_no(sc.contend))
        .push("realtime", Cell::text(sc.realtime.to_string()))
        .push("seconds", Cell::Num(sc.seconds, 1))
        .push("bridge_exit", Cell::text(r.exit.to_string()))
        .push("error", Cell::text(&r.error))
        .push("datagrams_per_s", Cell::Num(r.datagrams_per_s, 1))
        .push("rows_expected", Cell::Int(r.rows_expected))
        .push("rows_delivered", Cell::Int(r.rows_delivered))
        .push("delivered", Cell::Num(r.frac(r.rows_delivered), 6))
        .push("clean", Cell::Num(r.frac(r.rep.clean_rows), 6))
        .push(
            "lost",
            Cell::Int(r.rows_expected.saturating_sub(r.rows_delivered)),
        )
        .push("kernel_drops", Cell::Int(r.rep.kernel_drops))
        .push("upstream_missing_msgs", cnt(|c| c.upstream_missing_msgs))
        .push("blocks_learning", cnt(|c| c.blocks_learning))
        .push(
            "blocks_incomplete",
            cnt(|c| c.blocks_incomplete + c.blocks_incomplete_upstream),
        )
        .push("dropped_newest", cnt(|c| c.dropped_newest))
        .push("dropped_oldest", cnt(|c| c.dropped_oldest))
        .push("send_dropped", cnt(|c| c.send_dropped));
    for (i, name) in E2E_COLS.iter().enumerate() {
        row.push(name, n3(r.e2e[i]));
    }
    for (i, name) in BRIDGE_COLS.iter().enumerate() {
        row.push(name, n3(r.bridge_added[i]));
    }
    row.push("bridge_cpu_pct", n2(r.cpu_pct))
        .push("zmq_rx_cpu_pct", n2(r.rx_cpu_pct))
        .push("osc_tx_cpu_pct", n2(r.tx_cpu_pct))
        .push("drain_cpu_pct", n2(drain))
        .push("udp_baseline_cpu_pct", n2(udp))
        .push("cpu_ratio", n3(calc::cpu_ratio(r.cpu_pct, drain, udp)))
        .push("bridge_rss_mb", Cell::Num(r.rss_mb, 1))
        .push(
            "datagrams_per_syscall",
            n3(c.map_or(f64::NAN, |c| calc::ratio(c.sent as f64, c.syscalls as f64))),
        );
    row
}

pub const E2E_COLS: [&str; 5] = [
    "e2e_p50_ms",
    "e2e_p90_ms",
    "e2e_p99_ms",
    "e2e_p999_ms",
    "e2e_max_ms",
];
pub const BRIDGE_COLS: [&str; 5] = [
    "bridge_p50_ms",
    "bridge_p90_ms",
    "bridge_p99_ms",
    "bridge_p999_ms",
    "bridge_max_ms",
];

pub fn extra_row(ctx: &Ctx, r: &RunResult) -> Row {
    let c = r.counters;
    let cnt = |f: fn(&BridgeCounters) -> u64| {
        c.as_ref()
            .map_or(Cell::Num(f64::NAN, 0), |c| Cell::Int(f(c)))
    };
    let mut row = Row::default();
    row.push("scenario", Cell::text(r.sc.name()))
        .push("run", Cell::text(&r.run))
        .push("commit", Cell::text(&ctx.commit))
        .push("sim_samples", Cell::Int(r.samples_published))
        .push("sim_blocks", Cell::Int(r.sim_blocks))
        .push("sim_data_msgs", Cell::Int(r.sim_data_msgs))
        .push("sim_late_blocks", Cell::Int(r.sim_late_blocks))
        .push("sim_max_late_ms", n2(r.sim_max_late_ms))
        .push("zmq_messages", cnt(|c| c.messages))
        .push("blocks_emitted", cnt(|c| c.blocks_emitted))
        .push("blocks_incomplete_bridge", cnt(|c| c.blocks_incomplete))
        .push(
            "blocks_incomplete_upstream",
            cnt(|c| c.blocks_incomplete_upstream),
        )
        .push("blocks_filled", cnt(|c| c.blocks_filled))
        .push("malformed", cnt(|c| c.malformed))
        .push("late_msgs", cnt(|c| c.late_msgs))
        .push("oversize", cnt(|c| c.oversize))
        .push("datagrams_sent", cnt(|c| c.sent))
        .push("syscalls", cnt(|c| c.syscalls))
        .push("gso_batches", cnt(|c| c.gso_batches))
        .push("final_rss_mb", Cell::Num(r.final_rss_mb, 1))
        .push("sink_lost_in_sequence", Cell::Int(r.rep.lost_rows))
        .push("duplicated", Cell::Int(r.rep.duplicated_rows))
        .push("reordered", Cell::Int(r.rep.reordered_rows))
        .push("torn", Cell::Int(r.rep.torn_rows))
        .push("bad_values", Cell::Int(r.rep.bad_values))
        .push("discontinuities", Cell::Int(r.rep.discontinuities))
        .push("sink_rcvbuf", Cell::Int(r.rcvbuf as u64))
        .push("sink_rcvbuf_forced", yes_no(r.rcvbuf_forced))
        .push("sink_cpu_pct", n2(r.sink_cpu_pct))
        .push("instrument_cpu_pct", n2(r.instrument_cpu_pct))
        .push("sink_recv_calls", Cell::Int(r.rep.recv_calls))
        .push("sink_full_batches", Cell::Int(r.rep.full_batches))
        .push("bridge_fds_max", Cell::Int(r.fds))
        .push("bridge_threads_max", Cell::Int(r.threads))
        .push("cpu_window_s", Cell::Num(r.window_s, 1));
    row
}
