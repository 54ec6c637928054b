//! Text the bridge prints: start-up lines, the status line, the final report, JSON lines.

use crate::config::Config;
use crate::engine::{self, Engine, Report};
use crate::telemetry::dashboard::DashboardInfo;
use crate::telemetry::livestats;
use oe_testkit::{sim, sink};
use std::io::Write;
use std::time::Duration;

/// Writes one JSON line (a failed write, e.g. a closed pipe, is ignored: stats are advisory).
pub fn write_json_line(w: &mut dyn Write, line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = w.write_all(buf.as_bytes()).and_then(|_| w.flush());
}

/// What the dashboard shows at its top.
pub fn dashboard_info(cfg: &Config, eng: &Engine) -> DashboardInfo {
    let l = eng.layout();
    let fmt = engine::output_format(cfg);
    DashboardInfo {
        data_endpoint: l.data_endpoint.clone(),
        heartbeat: format!(
            "{} as ZMQ2OSC-{}",
            l.heartbeat_endpoint,
            engine::effective_uuid(&cfg.zmq.app_uuid)
                .chars()
                .take(4)
                .collect::<String>()
        ),
        output: l
            .outputs
            .iter()
            .map(|o| o.describe())
            .collect::<Vec<_>>()
            .join(" | "),
        ring_capacity: l.ring_capacity * l.outputs.len().max(1),
        policy: cfg
            .performance
            .osc_queue_overflow_strategy
            .as_str()
            .to_string(),
        factor: fmt.factor,
    }
}

/// The start-up lines (stderr).
pub fn print_startup(cfg: &Config, eng: &Engine) {
    let l = eng.layout();
    eprintln!("openephys-zmq2osc {}", env!("CARGO_PKG_VERSION"));
    if l.sources_listed {
        for s in &l.sources {
            eprintln!(
                "  source     <{}> ZMQ data {} (SUB, thread {})   heartbeat {} as {}",
                s.name,
                s.data_endpoint,
                s.receiver_thread,
                s.heartbeat_endpoint,
                engine::heartbeat_message(&s.uuid)
            );
        }
    } else {
        eprintln!(
            "  ZMQ data   {} (SUB)   heartbeat {} as {}",
            l.data_endpoint,
            l.heartbeat_endpoint,
            engine::heartbeat_message(&engine::effective_uuid(&cfg.zmq.app_uuid))
        );
    }
    for (i, o) in l.outputs.iter().enumerate() {
        match l.output_sources.get(i).and_then(|&s| l.sources.get(s)) {
            Some(s) if l.sources_listed => {
                eprintln!("  OSC        {} (from <{}>)", o.describe(), s.name)
            }
            _ => eprintln!("  OSC        {}", o.describe()),
        }
    }
    eprintln!(
        "  slab       {} frames × {} ch × {} samples = {:.1} MiB reserved (ring {} blocks, policy {}); \
         memory is touched only as blocks use it",
        l.slab_frames,
        cfg.performance.max_channels,
        cfg.performance.max_block_samples,
        l.slab_bytes as f64 / (1 << 20) as f64,
        l.ring_capacity,
        cfg.performance.osc_queue_overflow_strategy.as_str()
    );
    eprintln!("  pinning    {}", l.pinning.describe());
    if let Some(rt) = l.pinning.describe_realtime() {
        eprintln!("  realtime   {rt}");
    }
}

/// The stderr status line, from the same samples as the JSON stats (outputs summed). Its
/// `lost:` part names every way data is lost: blocks dropped incomplete (with and without
/// upstream loss), messages missing upstream, blocks dropped while learning the channel set
/// or for want of a free frame, blocks dropped by the queue policy, datagrams that failed to
/// send or were refused as oversize, malformed and late messages, and, with `--verify`, the
/// datagrams the verifier's socket lost in the kernel (`kernel_drops`).
pub fn status_line(
    cur: &livestats::Sample,
    prev: &livestats::Sample,
    kernel_drops: Option<u64>,
) -> String {
    let r = livestats::Rates::between(prev, cur);
    let d = cur.drops();
    // With listed sources: each source's message rate, channels and heartbeat state.
    let per_source = if cur.sources.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = cur
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let msgs = prev.sources.get(i).map_or(0, |p| p.rx("messages"));
                let rate = if r.dt > 0.0 {
                    s.rx("messages").saturating_sub(msgs) as f64 / r.dt
                } else {
                    0.0
                };
                format!(
                    "<{}> {:.0} msg/s {} ch restarts {} heartbeat {}",
                    s.name,
                    rate,
                    s.rx("channels"),
                    s.rx("restarts"),
                    s.hb_state()
                )
            })
            .collect();
        format!(" | sources: {}", parts.join(", "))
    };
    let kernel = kernel_drops.map_or(String::new(), |k| format!(" kernel {k}"));
    let lat = cur.bridge_added.map_or(String::new(), |(p50, p99, _)| {
        format!(
            " | bridge_added p50 {:.2} p99 {:.2} ms",
            p50 as f64 / 1e6,
            p99 as f64 / 1e6
        )
    });
    format!(
        "[{:7.1}s] zmq {:>7.0} msg/s {:>4.0} blocks/s {} ch @ {:.1} Hz | osc {:>7.0} dgram/s {:>6.2} MB/s queue {} | \
         lost: incomplete {} upstream-msgs {} learning {} no-frame {} policy {} send {} oversize {} malformed {} late {}{kernel} \
         | heartbeat {}{lat}{per_source}",
        cur.t,
        r.zmq_msgs,
        r.blocks,
        cur.rx("channels"),
        cur.sample_rate_hz(),
        r.datagrams,
        r.mbytes,
        cur.tx("queued"),
        d.incomplete + d.incomplete_upstream,
        d.upstream_missing_msgs,
        d.learning,
        d.no_frame,
        d.dropped_newest + d.dropped_oldest,
        d.send_failed,
        d.oversize,
        d.malformed,
        d.late,
        cur.hb_state(),
    )
}

/// The final report (stdout).
pub fn final_report(
    r: &Report,
    sim: Option<&sim::SimStats>,
    verify: Option<&sink::SinkReport>,
    elapsed: Duration,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let get = |v: &[(&str, u64)], n: &str| v.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1);
    let _ = writeln!(
        s,
        "== openephys-zmq2osc report ({:.1} s) ==",
        elapsed.as_secs_f64()
    );
    if let Some(st) = sim {
        let _ = writeln!(
            s,
            "simulator  blocks {}  data messages {}  ttl events {}  late blocks {} (max {:.1} ms behind)",
            st.blocks,
            st.data_messages,
            st.event_messages,
            st.late_blocks,
            st.max_lateness.as_secs_f64() * 1e3
        );
    }
    for rec in &r.recorded {
        let _ = writeln!(
            s,
            "record     {} messages to {}  not recorded (ring full) {}  write failures {}{}",
            rec.written,
            rec.path.display(),
            rec.dropped,
            rec.failed,
            rec.error
                .as_ref()
                .map_or(String::new(), |e| format!("  error: {e}"))
        );
    }
    let _ = writeln!(
        s,
        "zmq        messages {}  data {}  ttl {}  spikes {}  malformed {}  headers repaired {}  upstream missing msgs {}  sample gaps {} ({} samples)",
        get(&r.rx, "messages"),
        get(&r.rx, "data_msgs"),
        get(&r.rx, "ttl_events"),
        get(&r.rx, "spikes"),
        get(&r.rx, "malformed"),
        get(&r.rx, "headers_repaired"),
        get(&r.rx, "upstream_missing_msgs"),
        get(&r.rx, "upstream_sample_gaps"),
        get(&r.rx, "upstream_missing_samples"),
    );
    let _ = writeln!(
        s,
        "blocks     emitted {} (filled {}, {} channel rows; held while learning, sent late {})  incomplete {}  incomplete(upstream loss) {}  while learning channels {}  no free frame {}  restarts {}  loops {}  late msgs {}  stream changes {}  channel-set changes {}",
        get(&r.rx, "blocks_emitted"),
        get(&r.rx, "blocks_filled"),
        get(&r.rx, "rows_filled"),
        get(&r.rx, "blocks_held_late"),
        get(&r.rx, "blocks_incomplete"),
        get(&r.rx, "blocks_incomplete_upstream"),
        get(&r.rx, "blocks_learning"),
        get(&r.rx, "blocks_no_frame"),
        get(&r.rx, "restarts"),
        get(&r.rx, "backward_jumps"),
        get(&r.rx, "late_msgs"),
        get(&r.rx, "stream_changes"),
        get(&r.rx, "channel_set_changes"),
    );
    if r.sources_listed {
        for src in &r.sources {
            let _ = writeln!(
                s,
                "source     <{}> {}  messages {}  data {}  malformed {}  upstream missing msgs {}  | blocks emitted {}  incomplete {}  restarts {}  | heartbeat sent {}  replies {}  resets {}  state {}  | data connects {}  disconnects {}",
                src.name,
                src.endpoint,
                get(&src.rx, "messages"),
                get(&src.rx, "data_msgs"),
                get(&src.rx, "malformed"),
                get(&src.rx, "upstream_missing_msgs"),
                get(&src.rx, "blocks_emitted"),
                get(&src.rx, "blocks_incomplete") + get(&src.rx, "blocks_incomplete_upstream"),
                get(&src.rx, "restarts"),
                get(&src.hb, "sent"),
                get(&src.hb, "replies"),
                get(&src.hb, "resets"),
                crate::telemetry::counters::HB_STATES
                    .get(get(&src.hb, "state") as usize)
                    .copied()
                    .unwrap_or("?"),
                get(&src.hb, "data_connects"),
                get(&src.hb, "data_disconnects"),
            );
        }
    }
    for (i, tx) in r.tx.iter().enumerate() {
        let name = r.outputs.get(i).map_or("osc", String::as_str);
        let _ = writeln!(
            s,
            "osc [{name}] frames {}  rows {}  datagrams {}  sent {}  send-dropped {} (refused {})  oversize refused {}  split {}  syscalls {}  gso batches {}  | queue: dropped newest {} oldest {}, block waits {}  | ttl {} spikes {} status {} notices {}",
            get(tx, "frames"),
            get(tx, "rows"),
            get(tx, "datagrams"),
            get(tx, "sent"),
            get(tx, "send_dropped"),
            get(tx, "refused"),
            get(tx, "oversize"),
            get(tx, "split_messages"),
            get(tx, "syscalls"),
            get(tx, "gso_batches"),
            get(tx, "dropped_newest"),
            get(tx, "dropped_oldest"),
            get(tx, "block_waits"),
            get(tx, "ttl_sent"),
            get(tx, "spikes_sent"),
            get(tx, "status_sent"),
            get(tx, "notices_sent"),
        );
    }
    let malformed: Vec<String> =
        r.rx.iter()
            .skip_while(|(k, _)| *k != "bad_envelope")
            .take_while(|(k, _)| *k != "late_msgs")
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
    if !malformed.is_empty() {
        let _ = writeln!(s, "malformed  {}", malformed.join("  "));
    }
    let _ = writeln!(s, "{}", r.ledger().0);
    let _ = writeln!(
        s,
        "heartbeat  sent {}  replies {}  socket resets {}  | data connection: connects {}  disconnects {}  handshake failures {}  reconnects after protocol errors {}",
        get(&r.hb, "sent"),
        get(&r.hb, "replies"),
        get(&r.hb, "resets"),
        get(&r.hb, "data_connects"),
        get(&r.hb, "data_disconnects"),
        get(&r.hb, "data_handshake_failures"),
        get(&r.hb, "data_manual_reconnects"),
    );
    if let Some(v) = verify {
        let delivered = if v.rows + v.lost_rows > 0 {
            v.rows as f64 / (v.rows + v.lost_rows) as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "verifier   rows {}  clean {}  lost {}  duplicated {}  reordered {}  torn {}  bad values {}  kernel drops {}  delivered {:.4}",
            v.rows, v.clean_rows, v.lost_rows, v.duplicated_rows, v.reordered_rows, v.torn_rows, v.bad_values, v.kernel_drops, delivered
        );
        if let Some(h) = &v.latency {
            if !h.is_empty() {
                let _ = writeln!(
                    s,
                    "end-to-end (simulator send -> OSC received) ms: p50 {:.3}  p99 {:.3}  max {:.3}",
                    h.value_at_quantile(0.5) as f64 / 1e6,
                    h.value_at_quantile(0.99) as f64 / 1e6,
                    h.max() as f64 / 1e6
                );
            }
        }
    }
    s.push_str(&r.latencies.table());
    s
}
