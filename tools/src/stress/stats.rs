//! What the bridge writes for machines: the JSON stats objects of `--stats-json` (one per
//! `--stats-interval`, then one with `"final": true` after the threads stopped, holding the final
//! counters; see `zmq2osc::telemetry::livestats::json_line`) and the `--histogram-csv`
//! distributions. `stress` reads only these, never the human text report.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The final stats object of one bridge run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinalStats {
    /// Seconds since the bridge started.
    pub t_s: f64,
    /// Receiver counters by name.
    pub rx: BTreeMap<String, u64>,
    /// Output (shard) counters by name, summed over the outputs.
    pub tx: BTreeMap<String, u64>,
    /// Heartbeat counters by name.
    pub hb: BTreeMap<String, u64>,
    /// Resident set size at the end (`None` without `/proc`).
    pub rss_bytes: Option<u64>,
    /// `bridge_added` p50 and p99 (ms) and count, `None` before the first block went out.
    pub bridge_added: Option<(f64, f64, u64)>,
}

fn counter_map(o: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, u64>, String> {
    let m = o
        .get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("final stats object has no `{key}` object"))?;
    m.iter()
        .map(|(k, v)| {
            v.as_u64()
                .map(|n| (k.clone(), n))
                .ok_or_else(|| format!("counter {key}.{k} is not an unsigned integer: {v}"))
        })
        .collect()
}

impl FinalStats {
    /// Parses one JSON object (must carry `"final": true`).
    pub fn from_object(line: &str) -> Result<FinalStats, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let o = v.as_object().ok_or("stats line is not a JSON object")?;
        if o.get("final").and_then(Value::as_bool) != Some(true) {
            return Err("stats object is not the final one (`final` is not true)".into());
        }
        let t_s = o.get("t").and_then(Value::as_f64).unwrap_or(f64::NAN);
        let rss_bytes = o
            .get("process")
            .and_then(|p| p.get("rss_bytes"))
            .and_then(Value::as_u64);
        let bridge_added = o.get("latency").and_then(Value::as_object).and_then(|l| {
            Some((
                l.get("bridge_added_p50_ms")?.as_f64()?,
                l.get("bridge_added_p99_ms")?.as_f64()?,
                l.get("bridge_added_count")?.as_u64()?,
            ))
        });
        Ok(FinalStats {
            t_s,
            rx: counter_map(o, "rx")?,
            tx: counter_map(o, "tx")?,
            hb: counter_map(o, "hb")?,
            rss_bytes,
            bridge_added,
        })
    }

    /// The final object among the lines of a `--stats-json` file (the last line whose
    /// `final` is true). Interval lines and a torn last line (a killed bridge) are skipped;
    /// an error says what was found instead.
    pub fn from_lines(text: &str) -> Result<FinalStats, String> {
        let mut lines = 0usize;
        let mut invalid = 0usize;
        let mut last_err = None;
        for line in text.lines().rev().filter(|l| !l.trim().is_empty()) {
            lines += 1;
            match FinalStats::from_object(line) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    if serde_json::from_str::<Value>(line).is_err() {
                        invalid += 1;
                    } else if line.contains("\"final\":true") {
                        // A final object that does not parse as one: say why.
                        last_err.get_or_insert(e);
                    }
                }
            }
        }
        Err(match last_err {
            Some(e) => e,
            None => format!(
                "no final stats object ({lines} line(s), {invalid} not valid JSON): \
                 the bridge did not finish normally"
            ),
        })
    }

    fn get(map: &BTreeMap<String, u64>, block: &str, name: &str) -> Result<u64, String> {
        map.get(name)
            .copied()
            .ok_or_else(|| format!("counter {block}.{name} missing from the final stats object"))
    }
    /// A receiver counter (an error names a missing one: counter names are an interface).
    pub fn rx(&self, name: &str) -> Result<u64, String> {
        Self::get(&self.rx, "rx", name)
    }
    /// An output counter summed over the outputs.
    pub fn tx(&self, name: &str) -> Result<u64, String> {
        Self::get(&self.tx, "tx", name)
    }
}

/// The counters `stress` reports, taken by name from the final stats object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeCounters {
    /// ZMQ messages received.
    pub messages: u64,
    /// Blocks sent on to the outputs.
    pub blocks_emitted: u64,
    /// Blocks spent learning the channel set.
    pub blocks_learning: u64,
    /// Blocks dropped incomplete (the bridge's own).
    pub blocks_incomplete: u64,
    /// Blocks dropped incomplete because of upstream loss.
    pub blocks_incomplete_upstream: u64,
    /// Blocks sent with missing channels filled (`missing_channel_policy`).
    pub blocks_filled: u64,
    /// Messages missing upstream by `message_num`.
    pub upstream_missing_msgs: u64,
    /// Malformed messages.
    pub malformed: u64,
    /// Messages after their block closed.
    pub late_msgs: u64,
    /// Blocks the receiver discarded (`drop_newest` or a stalled output).
    pub dropped_newest: u64,
    /// Blocks an output discarded (`drop_oldest`).
    pub dropped_oldest: u64,
    /// Datagrams that failed to send.
    pub send_dropped: u64,
    /// Datagrams refused as larger than the UDP limit.
    pub oversize: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Send system calls.
    pub syscalls: u64,
    /// UDP GSO batches.
    pub gso_batches: u64,
}

impl BridgeCounters {
    /// Every counter by name; all missing names are listed in one error.
    pub fn from_final(f: &FinalStats) -> Result<BridgeCounters, String> {
        let mut missing = Vec::new();
        let mut rx = |n: &str| {
            f.rx(n).unwrap_or_else(|_| {
                missing.push(format!("rx.{n}"));
                0
            })
        };
        let mut c = BridgeCounters {
            messages: rx("messages"),
            blocks_emitted: rx("blocks_emitted"),
            blocks_learning: rx("blocks_learning"),
            blocks_incomplete: rx("blocks_incomplete"),
            blocks_incomplete_upstream: rx("blocks_incomplete_upstream"),
            blocks_filled: rx("blocks_filled"),
            upstream_missing_msgs: rx("upstream_missing_msgs"),
            malformed: rx("malformed"),
            late_msgs: rx("late_msgs"),
            dropped_newest: rx("dropped_newest"),
            ..BridgeCounters::default()
        };
        let mut tx = |n: &str| {
            f.tx(n).unwrap_or_else(|_| {
                missing.push(format!("tx.{n}"));
                0
            })
        };
        c.dropped_oldest = tx("dropped_oldest");
        c.send_dropped = tx("send_dropped");
        c.oversize = tx("oversize");
        c.sent = tx("sent");
        c.syscalls = tx("syscalls");
        c.gso_batches = tx("gso_batches");
        if missing.is_empty() {
            Ok(c)
        } else {
            Err(format!(
                "counter(s) missing from the final stats object: {}",
                missing.join(", ")
            ))
        }
    }
}

/// Quantiles (ms) of one distribution of a `--histogram-csv` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    /// Values recorded.
    pub count: u64,
    /// p50, p90, p99, p99.9 and max, ms.
    pub ms: [f64; 5],
}

/// Reads `metric` out of a `--histogram-csv` file (`metric,percentile,value_us,
/// count_at_or_below,total_count`, one row per percentile step, ascending). A quantile is the
/// value of the first step at or above it; the max is the value of the last step.
pub fn hist_quantiles(csv: &str, metric: &str) -> Result<Quantiles, String> {
    let mut steps: Vec<(f64, f64)> = Vec::new();
    let mut count = 0u64;
    let mut lines = csv.lines();
    let header = lines.next().ok_or("empty histogram CSV")?;
    if !header.starts_with("metric,percentile,value_us") {
        return Err(format!("unexpected histogram CSV header: {header}"));
    }
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.first() != Some(&metric) {
            continue;
        }
        let parsed = (|| {
            Some((
                f.get(1)?.parse::<f64>().ok()?,
                f.get(2)?.parse::<f64>().ok()?,
                f.get(4)?.parse::<u64>().ok()?,
            ))
        })();
        let (p, v, n) =
            parsed.ok_or_else(|| format!("histogram CSV line {}: cannot parse {line}", i + 2))?;
        steps.push((p, v));
        count = n;
    }
    let Some(&(_, max_us)) = steps.last() else {
        return Err(format!("no `{metric}` rows in the histogram CSV"));
    };
    let at = |q: f64| {
        steps
            .iter()
            .find(|(p, _)| *p >= q - 1e-9)
            .map_or(max_us, |s| s.1)
            / 1e3
    };
    Ok(Quantiles {
        count,
        ms: [at(50.0), at(90.0), at(99.0), at(99.9), max_us / 1e3],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A final object as `json_line` writes it (trimmed counter lists).
    const FINAL: &str = r#"{"t":8.02,"final":true,"interval_s":8.0,"hb_state":"online","rates":{"zmq_msgs_per_s":11000.0,"blocks_per_s":43.1,"datagrams_per_s":30000.0,"mb_per_s":31.0},"queue":{"queued":0,"capacity":64},"last_message_age_s":2.9,"process":{"cpu_percent":9.5,"rss_bytes":52428800},"latency":{"bridge_added_p50_ms":0.71,"bridge_added_p99_ms":1.34,"bridge_added_count":215},"rx":{"messages":55040,"data_msgs":55040,"blocks_emitted":214,"blocks_incomplete":0,"blocks_incomplete_upstream":1,"blocks_learning":1,"blocks_filled":0,"upstream_missing_msgs":3,"malformed":0,"late_msgs":0,"dropped_newest":0,"channels":256},"tx":{"sent":148944,"syscalls":2400,"gso_batches":2327,"dropped_oldest":0,"send_dropped":0,"oversize":0,"dropped_newest":0},"hb":{"sent":8,"replies":8,"state":1}}"#;

    #[test]
    fn parses_the_final_object() {
        let f = FinalStats::from_object(FINAL).unwrap();
        assert_eq!(f.t_s, 8.02);
        assert_eq!(f.rss_bytes, Some(52_428_800));
        assert_eq!(f.bridge_added, Some((0.71, 1.34, 215)));
        assert_eq!(f.rx("messages"), Ok(55_040));
        assert_eq!(f.tx("sent"), Ok(148_944));
        assert!(f.rx("nope").unwrap_err().contains("rx.nope"));
        let c = BridgeCounters::from_final(&f).unwrap();
        assert_eq!(c.blocks_emitted, 214);
        assert_eq!(c.blocks_learning, 1);
        assert_eq!(c.blocks_incomplete_upstream, 1);
        assert_eq!(c.upstream_missing_msgs, 3);
        assert_eq!((c.sent, c.syscalls, c.gso_batches), (148_944, 2400, 2327));
    }

    #[test]
    fn picks_the_final_line_and_skips_interval_and_torn_lines() {
        let interval = FINAL
            .replace("\"final\":true", "\"final\":false")
            .replace("\"sent\":148944", "\"sent\":1");
        let text = format!("{interval}\n{FINAL}\n{{\"t\":9.0,\"fin");
        let f = FinalStats::from_lines(&text).unwrap();
        assert_eq!(f.tx("sent"), Ok(148_944));
        // Interval objects alone are not a result.
        let e = FinalStats::from_lines(&format!("{interval}\n{interval}\n")).unwrap_err();
        assert!(
            e.contains("no final stats object (2 line(s), 0 not valid JSON)"),
            "{e}"
        );
        assert!(FinalStats::from_lines("").is_err());
    }

    #[test]
    fn null_latency_and_process_are_none() {
        let s = FINAL
            .replace(
                r#"{"bridge_added_p50_ms":0.71,"bridge_added_p99_ms":1.34,"bridge_added_count":215}"#,
                "null",
            )
            .replace(r#"{"cpu_percent":9.5,"rss_bytes":52428800}"#, "null");
        let f = FinalStats::from_object(&s).unwrap();
        assert_eq!(f.bridge_added, None);
        assert_eq!(f.rss_bytes, None);
    }

    #[test]
    fn renamed_counters_are_an_error_not_zero() {
        let s = FINAL
            .replace("\"blocks_learning\"", "\"learning\"")
            .replace("\"syscalls\"", "\"calls\"");
        let f = FinalStats::from_object(&s).unwrap();
        let e = BridgeCounters::from_final(&f).unwrap_err();
        assert!(
            e.contains("rx.blocks_learning") && e.contains("tx.syscalls"),
            "{e}"
        );
        let bad = FINAL.replace("\"sent\":148944", "\"sent\":-1");
        assert!(FinalStats::from_object(&bad)
            .unwrap_err()
            .contains("tx.sent"));
        let e = FinalStats::from_lines(&bad).unwrap_err();
        assert!(e.contains("tx.sent"), "{e}");
    }

    #[test]
    fn histogram_quantiles() {
        let csv = "metric,percentile,value_us,count_at_or_below,total_count\n\
                   queue_wait,50.0,1.0,5,10\n\
                   bridge_added,0.000000,100.0,1,1000\n\
                   bridge_added,50.000000,500.0,500,1000\n\
                   bridge_added,87.500000,800.0,875,1000\n\
                   bridge_added,93.750000,900.0,937,1000\n\
                   bridge_added,99.218750,1500.0,992,1000\n\
                   bridge_added,99.902344,2500.0,999,1000\n\
                   bridge_added,100.000000,4000.0,1000,1000\n";
        let q = hist_quantiles(csv, "bridge_added").unwrap();
        assert_eq!(q.count, 1000);
        assert_eq!(q.ms, [0.5, 0.9, 1.5, 2.5, 4.0]);
        assert!(hist_quantiles(csv, "block_spread").is_err());
        assert!(hist_quantiles("x,y\n", "bridge_added").is_err());
        assert!(hist_quantiles(
            "metric,percentile,value_us,count_at_or_below,total_count\nbridge_added,50,x,1,1\n",
            "bridge_added"
        )
        .unwrap_err()
        .contains("line 2"));
    }
}
