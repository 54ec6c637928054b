//! Live statistics for the dashboard and the headless JSON lines.
//!
//! Everything here reads what the threads already publish: the counter blocks of [`Stats`]
//! (relaxed atomic loads, one writer each) and [`Stats::last_message_ms`]. Nothing is added
//! to the hot path. Latency percentiles come from [`Stats::latency_summary`]: each
//! hot thread hands its histograms over once a second through SPSC rings (two pointer moves,
//! no lock, no allocation), so live views are at most about a second behind.
//!
//! Process CPU and RSS come from `/proc/self/stat` and `/proc/self/status` on Linux (`None`
//! elsewhere).

use crate::telemetry::counters::{Stats, HB_COUNTERS, HB_STATES, RX_COUNTERS, TX_COUNTERS};
use serde_json::{Map, Number, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One reading of every published counter.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// Seconds since the bridge started.
    pub t: f64,
    /// Receiver counters, in [`RX_COUNTERS`] order.
    pub rx: Vec<u64>,
    /// Shard counters summed over the shards, in [`TX_COUNTERS`] order.
    pub tx: Vec<u64>,
    /// Heartbeat counters, in [`HB_COUNTERS`] order.
    pub hb: Vec<u64>,
    /// Age of the last received ZMQ message in seconds (`None` = nothing received yet).
    pub last_message_age: Option<f64>,
    /// Process CPU time and RSS (`None` where `/proc` is not available).
    pub process: Option<ProcSample>,
    /// `bridge_added` latency so far: p50 and p99 in ns, and the count (`None` before the
    /// first value). The hot threads hand their histograms over once a second.
    pub bridge_added: Option<(u64, u64, u64)>,
    /// Each source on its own, when the config lists its sources (empty otherwise: the
    /// top-level `rx`/`hb` are then the single source's).
    pub sources: Vec<SourceSample>,
    /// `publisher_to_wire` so far (the GUI's header timestamp → send; ms resolution, needs the
    /// GUI's clock to match this machine's): p50, p99 in ns, count.
    pub publisher_to_wire: Option<(u64, u64, u64)>,
}

/// One source's counters in a [`Sample`].
#[derive(Debug, Clone)]
pub struct SourceSample {
    /// Its name.
    pub name: String,
    /// Its data endpoint.
    pub endpoint: String,
    /// Its receiver's counters, in [`RX_COUNTERS`] order.
    pub rx: Vec<u64>,
    /// Its heartbeat's counters, in [`HB_COUNTERS`] order.
    pub hb: Vec<u64>,
    /// Age of its last message in seconds (`None` = nothing received yet).
    pub last_message_age: Option<f64>,
}

/// Name of heartbeat state `v` (`?` if unknown).
fn hb_state_name(v: u64) -> &'static str {
    HB_STATES.get(v as usize).copied().unwrap_or("?")
}

impl SourceSample {
    /// A receiver counter by name (0 if unknown).
    pub fn rx(&self, n: &str) -> u64 {
        get(RX_COUNTERS, &self.rx, n)
    }
    /// A heartbeat counter by name (0 if unknown).
    pub fn hb(&self, n: &str) -> u64 {
        get(HB_COUNTERS, &self.hb, n)
    }
    /// Heartbeat state name.
    pub fn hb_state(&self) -> &'static str {
        hb_state_name(self.hb("state"))
    }
}

fn age_s(last_ms: u64) -> Option<f64> {
    (last_ms != 0).then(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        now.saturating_sub(last_ms) as f64 / 1000.0
    })
}

/// Process CPU time and resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time of the whole process, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

fn get(names: &[&str], vals: &[u64], n: &str) -> u64 {
    names
        .iter()
        .position(|k| *k == n)
        .and_then(|i| vals.get(i).copied())
        .unwrap_or(0)
}

/// Counter names the dashboard and the rates read (a unit test checks they all exist).
pub const USED_COUNTERS: [(&str, &[&str]); 3] = [
    (
        "rx",
        &[
            "messages",
            "blocks_emitted",
            "blocks_incomplete",
            "blocks_incomplete_upstream",
            "blocks_learning",
            "blocks_no_frame",
            "upstream_missing_msgs",
            "upstream_sample_gaps",
            "upstream_missing_samples",
            "dropped_newest",
            "malformed",
            "late_msgs",
            "channels",
            "sample_rate_mhz",
            "stream_changes",
            "channel_set_changes",
            "restarts",
            "backward_jumps",
        ],
    ),
    (
        "tx",
        &[
            "sent",
            "bytes",
            "queued",
            "dropped_oldest",
            "send_dropped",
            "oversize",
            "would_block_dropped",
            "refused",
            "too_big",
            "other_errors",
        ],
    ),
    (
        "hb",
        &[
            "state",
            "sent",
            "replies",
            "resets",
            "data_connects",
            "data_disconnects",
        ],
    ),
];

impl Sample {
    /// Reads every counter now. `started` is the bridge's start time.
    pub fn take(shared: &Stats, started: Instant) -> Sample {
        let at = Instant::now();
        let rx = shared.rx.values();
        let mut tx = vec![0u64; TX_COUNTERS.len()];
        for i in 0..shared.tx.len() {
            for (sum, v) in tx.iter_mut().zip(shared.tx_values(i)) {
                *sum += v;
            }
        }
        let hb = shared.hb.values();
        let last_message_age = age_s(shared.last_message_ms_any());
        let sources = if shared.sources_listed {
            shared
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| SourceSample {
                    name: s.name.clone(),
                    endpoint: s.endpoint.clone(),
                    rx: shared.rx.get(i).map_or_else(Vec::new, |b| b.values()),
                    hb: shared.hb.get(i).map_or_else(Vec::new, |b| b.values()),
                    last_message_age: shared
                        .last_message_ms
                        .get(i)
                        .and_then(|m| age_s(m.load(std::sync::atomic::Ordering::Relaxed))),
                })
                .collect()
        } else {
            Vec::new()
        };
        Sample {
            at,
            t: at.saturating_duration_since(started).as_secs_f64(),
            rx,
            tx,
            hb,
            last_message_age,
            sources,
            process: read_process(),
            bridge_added: shared.latency_summary("bridge_added"),
            publisher_to_wire: shared.latency_summary("publisher_to_wire"),
        }
    }
    /// A receiver counter by name (0 if unknown).
    pub fn rx(&self, n: &str) -> u64 {
        get(RX_COUNTERS, &self.rx, n)
    }
    /// A shard counter by name, summed over the shards (0 if unknown).
    pub fn tx(&self, n: &str) -> u64 {
        get(TX_COUNTERS, &self.tx, n)
    }
    /// A heartbeat counter by name (0 if unknown).
    pub fn hb(&self, n: &str) -> u64 {
        get(HB_COUNTERS, &self.hb, n)
    }
    /// Heartbeat state name.
    pub fn hb_state(&self) -> &'static str {
        hb_state_name(self.hb("state"))
    }
    /// Sample rate in Hz as published by the receiver (0 = not known yet).
    pub fn sample_rate_hz(&self) -> f64 {
        self.rx("sample_rate_mhz") as f64 / 1000.0
    }
    /// Blocks lost to the receiver or the queue policy, by cause.
    pub fn drops(&self) -> Drops {
        Drops {
            incomplete: self.rx("blocks_incomplete"),
            incomplete_upstream: self.rx("blocks_incomplete_upstream"),
            learning: self.rx("blocks_learning"),
            no_frame: self.rx("blocks_no_frame"),
            upstream_missing_msgs: self.rx("upstream_missing_msgs"),
            dropped_oldest: self.tx("dropped_oldest"),
            dropped_newest: self.rx("dropped_newest"),
            send_failed: self.tx("send_dropped"),
            malformed: self.rx("malformed"),
            late: self.rx("late_msgs"),
            oversize: self.tx("oversize"),
        }
    }
}

/// Losses by cause (see the README's ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// Blocks dropped incomplete (a channel never arrived).
    pub incomplete: u64,
    /// Blocks dropped incomplete because messages were lost upstream (`message_num` gaps).
    pub incomplete_upstream: u64,
    /// Blocks dropped while the channel set was being learned.
    pub learning: u64,
    /// Blocks dropped for want of a free frame.
    pub no_frame: u64,
    /// Messages missing upstream by `message_num`.
    pub upstream_missing_msgs: u64,
    /// Blocks the encoder discarded (`drop_oldest`).
    pub dropped_oldest: u64,
    /// Blocks the receiver discarded (`drop_newest`, or a stalled encoder).
    pub dropped_newest: u64,
    /// Datagrams that failed to send (refused, would block, too big, other).
    pub send_failed: u64,
    /// Malformed ZMQ messages.
    pub malformed: u64,
    /// Messages that arrived after their block was closed.
    pub late: u64,
    /// Datagrams refused as larger than the UDP limit.
    pub oversize: u64,
}

/// Rates between two samples, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Seconds between the samples.
    pub dt: f64,
    /// ZMQ messages per second.
    pub zmq_msgs: f64,
    /// Complete blocks sent on per second.
    pub blocks: f64,
    /// Datagrams sent per second.
    pub datagrams: f64,
    /// OSC payload megabytes (10^6 B) per second.
    pub mbytes: f64,
    /// Process CPU in percent of one core (`None` without `/proc`).
    pub cpu_percent: Option<f64>,
}

impl Rates {
    /// Rates from `prev` to `cur` (zero when no time passed).
    pub fn between(prev: &Sample, cur: &Sample) -> Rates {
        let dt = cur.at.saturating_duration_since(prev.at).as_secs_f64();
        if dt <= 0.0 {
            return Rates::default();
        }
        let r = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
        Rates {
            dt,
            zmq_msgs: r(cur.rx("messages"), prev.rx("messages")),
            blocks: r(cur.rx("blocks_emitted"), prev.rx("blocks_emitted")),
            datagrams: r(cur.tx("sent"), prev.tx("sent")),
            mbytes: r(cur.tx("bytes"), prev.tx("bytes")) / 1e6,
            cpu_percent: match (prev.process, cur.process) {
                (Some(a), Some(b)) => Some((b.cpu_seconds - a.cpu_seconds).max(0.0) / dt * 100.0),
                _ => None,
            },
        }
    }
}

/// Clock ticks per second for `/proc/self/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| crate::telemetry::sys::clock_ticks_per_second() as f64)
}

/// Parses `utime + stime` (seconds) out of a `/proc/<pid>/stat` line.
pub fn parse_proc_stat_cpu(stat: &str, ticks_per_second: f64) -> Option<f64> {
    // The command name (field 2) may contain spaces and parentheses: fields resume after the
    // last ')'. utime and stime are fields 14 and 15, i.e. the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: f64 = f.next()?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

/// Parses `VmRSS` (bytes) out of `/proc/<pid>/status`.
pub fn parse_proc_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's CPU time and RSS (`None` where `/proc` is missing).
pub fn read_process() -> Option<ProcSample> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(ProcSample {
        cpu_seconds: parse_proc_stat_cpu(&stat, clock_ticks())?,
        rss_bytes: parse_proc_status_rss(&status)?,
    })
}

fn num(v: f64) -> Value {
    // Rounded to keep lines short; NaN/inf (cannot happen) become null.
    Number::from_f64((v * 1000.0).round() / 1000.0).map_or(Value::Null, Value::Number)
}

fn counters(names: &[&str], vals: &[u64]) -> Value {
    let mut m = Map::new();
    for (n, v) in names.iter().zip(vals) {
        m.insert((*n).to_string(), Value::from(*v));
    }
    Value::Object(m)
}

/// One headless JSON object (a single line, no trailing newline): `t` (s since start),
/// `interval_s`, every `rx`/`tx`/`hb` counter by name, `hb_state`, `rates` (per second over
/// the interval), `queue` (`queued` / ring `capacity`), `last_message_age_s` (null before
/// the first message), `process` (`cpu_percent`, `rss_bytes`; null without `/proc`) and
/// `latency` (`bridge_added_p50_ms`, `bridge_added_p99_ms`, `bridge_added_count` so far; null
/// before the first block went out), `final` (true on the object written after the threads
/// stopped, holding the final counters) and the `extra` keys the caller adds (the bridge adds
/// `pinning`). `tx` counters are summed over the outputs; `rx` and `hb` over the sources
/// (states and rates: the maximum), and when the config lists its sources, `sources` holds
/// each: `[{"name", "endpoint", "rx": {...}, "hb": {...}, "hb_state",
/// "last_message_age_s", "rates": {"zmq_msgs_per_s", "blocks_per_s"}}]`.
pub fn json_line(
    cur: &Sample,
    prev: &Sample,
    ring_capacity: usize,
    last: bool,
    extra: &[(&str, Value)],
) -> String {
    let r = Rates::between(prev, cur);
    let mut o = Map::new();
    o.insert("t".into(), num(cur.t));
    o.insert("final".into(), Value::from(last));
    o.insert("interval_s".into(), num(r.dt));
    o.insert("hb_state".into(), Value::from(cur.hb_state()));
    let mut rates = Map::new();
    rates.insert("zmq_msgs_per_s".into(), num(r.zmq_msgs));
    rates.insert("blocks_per_s".into(), num(r.blocks));
    rates.insert("datagrams_per_s".into(), num(r.datagrams));
    rates.insert("mb_per_s".into(), num(r.mbytes));
    o.insert("rates".into(), Value::Object(rates));
    let mut q = Map::new();
    q.insert("queued".into(), Value::from(cur.tx("queued")));
    q.insert("capacity".into(), Value::from(ring_capacity as u64));
    o.insert("queue".into(), Value::Object(q));
    o.insert(
        "last_message_age_s".into(),
        cur.last_message_age.map_or(Value::Null, num),
    );
    let process = match (cur.process, r.cpu_percent) {
        (Some(p), cpu) => {
            let mut m = Map::new();
            m.insert("cpu_percent".into(), cpu.map_or(Value::Null, num));
            m.insert("rss_bytes".into(), Value::from(p.rss_bytes));
            Value::Object(m)
        }
        (None, _) => Value::Null,
    };
    o.insert("process".into(), process);
    let latency = match cur.bridge_added {
        Some((p50, p99, n)) => {
            let mut m = Map::new();
            m.insert("bridge_added_p50_ms".into(), num(p50 as f64 / 1e6));
            m.insert("bridge_added_p99_ms".into(), num(p99 as f64 / 1e6));
            m.insert("bridge_added_count".into(), Value::from(n));
            if let Some((p50, p99, _)) = cur.publisher_to_wire {
                m.insert("publisher_to_wire_p50_ms".into(), num(p50 as f64 / 1e6));
                m.insert("publisher_to_wire_p99_ms".into(), num(p99 as f64 / 1e6));
            }
            Value::Object(m)
        }
        None => Value::Null,
    };
    o.insert("latency".into(), latency);
    o.insert("rx".into(), counters(RX_COUNTERS, &cur.rx));
    o.insert("tx".into(), counters(TX_COUNTERS, &cur.tx));
    o.insert("hb".into(), counters(HB_COUNTERS, &cur.hb));
    if !cur.sources.is_empty() {
        let list = cur
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = prev.sources.get(i);
                let rate = |n: &str| {
                    if r.dt <= 0.0 {
                        return num(0.0);
                    }
                    num(s.rx(n).saturating_sub(p.map_or(0, |p| p.rx(n))) as f64 / r.dt)
                };
                let mut m = Map::new();
                m.insert("name".into(), Value::from(s.name.as_str()));
                m.insert("endpoint".into(), Value::from(s.endpoint.as_str()));
                m.insert("rx".into(), counters(RX_COUNTERS, &s.rx));
                m.insert("hb".into(), counters(HB_COUNTERS, &s.hb));
                m.insert("hb_state".into(), Value::from(s.hb_state()));
                m.insert(
                    "last_message_age_s".into(),
                    s.last_message_age.map_or(Value::Null, num),
                );
                let mut rates = Map::new();
                rates.insert("zmq_msgs_per_s".into(), rate("messages"));
                rates.insert("blocks_per_s".into(), rate("blocks_emitted"));
                m.insert("rates".into(), Value::Object(rates));
                Value::Object(m)
            })
            .collect();
        o.insert("sources".into(), Value::Array(list));
    }
    for (k, v) in extra {
        o.insert((*k).to_string(), v.clone());
    }
    Value::Object(o).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_used_exists() {
        for (block, names) in USED_COUNTERS {
            let table = match block {
                "rx" => RX_COUNTERS,
                "tx" => TX_COUNTERS,
                _ => HB_COUNTERS,
            };
            for n in names {
                assert!(table.contains(n), "{block}.{n} is no longer published");
            }
        }
    }

    #[test]
    fn proc_parsing() {
        let stat = "1234 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0 100 200 300";
        assert_eq!(parse_proc_stat_cpu(stat, 100.0), Some(3.0));
        assert_eq!(parse_proc_stat_cpu("garbage", 100.0), None);
        let status = "Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    2048 kB\nThreads: 4\n";
        assert_eq!(parse_proc_status_rss(status), Some(2 << 20));
        assert_eq!(parse_proc_status_rss("Name: x\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let p = read_process().expect("/proc/self");
        assert!(p.rss_bytes > 0);
        assert!(p.cpu_seconds >= 0.0);
    }

    #[test]
    fn rates_and_json() {
        let t0 = Instant::now();
        let pos = |names: &[&str], n: &str| names.iter().position(|k| *k == n).unwrap();
        let mk = |at: Instant, msgs: u64, sent: u64| {
            let mut rx = vec![0; RX_COUNTERS.len()];
            rx[pos(RX_COUNTERS, "messages")] = msgs;
            let mut tx = vec![0; TX_COUNTERS.len()];
            tx[pos(TX_COUNTERS, "sent")] = sent;
            tx[pos(TX_COUNTERS, "bytes")] = sent * 1000;
            Sample {
                at,
                t: at.duration_since(t0).as_secs_f64(),
                rx,
                tx,
                hb: vec![0; HB_COUNTERS.len()],
                last_message_age: None,
                sources: Vec::new(),
                process: None,
                bridge_added: None,
                publisher_to_wire: None,
            }
        };
        let a = mk(t0, 0, 0);
        let b = mk(t0 + std::time::Duration::from_secs(2), 2000, 500);
        let r = Rates::between(&a, &b);
        assert_eq!((r.zmq_msgs, r.datagrams, r.mbytes), (1000.0, 250.0, 0.25));
        let v: Value = serde_json::from_str(&json_line(
            &b,
            &a,
            7,
            false,
            &[("pinning", Value::from("x"))],
        ))
        .unwrap();
        assert_eq!(v["t"], 2.0);
        assert_eq!(v["rx"]["messages"], 2000);
        assert_eq!(v["tx"]["sent"], 500);
        assert_eq!(v["queue"]["capacity"], 7);
        assert_eq!(v["rates"]["zmq_msgs_per_s"], 1000.0);
        assert_eq!(v["hb_state"], "connecting");
        assert_eq!(v["pinning"], "x");
        assert!(v["last_message_age_s"].is_null());
        assert_eq!(v["rx"].as_object().unwrap().len(), RX_COUNTERS.len());
        assert_eq!(v["tx"].as_object().unwrap().len(), TX_COUNTERS.len());
        assert_eq!(v["hb"].as_object().unwrap().len(), HB_COUNTERS.len());
        assert!(
            v.get("sources").is_none(),
            "no sources key for the single source"
        );
        // Listed sources: one object each, with its own counters and rates.
        let src = |name: &str, msgs: u64, state: u64| {
            let mut rx = vec![0; RX_COUNTERS.len()];
            rx[pos(RX_COUNTERS, "messages")] = msgs;
            let mut hb = vec![0; HB_COUNTERS.len()];
            hb[pos(HB_COUNTERS, "state")] = state;
            SourceSample {
                name: name.into(),
                endpoint: format!("tcp://127.0.0.1:{}", 5000 + msgs),
                rx,
                hb,
                last_message_age: Some(0.5),
            }
        };
        let mut a2 = a.clone();
        a2.sources = vec![src("probeA", 0, 0), src("probeB", 0, 0)];
        let mut b2 = b.clone();
        b2.sources = vec![src("probeA", 1500, 1), src("probeB", 500, 2)];
        let v: Value = serde_json::from_str(&json_line(&b2, &a2, 7, false, &[])).unwrap();
        let list = v["sources"].as_array().expect("sources");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["name"], "probeA");
        assert_eq!(list[0]["rx"]["messages"], 1500);
        assert_eq!(list[0]["hb_state"], "online");
        assert_eq!(list[1]["hb_state"], "not_responding");
        assert_eq!(list[1]["rates"]["zmq_msgs_per_s"], 250.0);
        assert_eq!(list[1]["last_message_age_s"], 0.5);
        assert_eq!(list[1]["rx"].as_object().unwrap().len(), RX_COUNTERS.len());
    }
}
