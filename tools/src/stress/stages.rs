//! Where the latency goes: stage-by-stage quantiles of every full-rate row, reduced from the
//! raw files of its runs (`raw/<scenario>/r<k>/bridge-hist.csv`, the bridge's own span
//! histograms, and `latency.csv`, the sink's end-to-end histogram) to one median per span and
//! quantile, written as `stages.csv`, a markdown table for `summary.md` and `stages.svg`.
//! The same reduction serves a fresh matrix run and `stress --replot DIR`.

use super::calc;
use super::stats::{self, Quantiles};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// The spans of the breakdown, in pipeline order, with what each measures. The first four are
/// the bridge's (names from `zmq2osc::telemetry::latency::SPANS`), `e2e` is the sink's.
pub const STAGES: [(&str, &str); 5] = [
    (
        "block_spread",
        "first -> last ZMQ message of a block at the receiver (the publisher's burst)",
    ),
    (
        "queue_wait",
        "block complete at the receiver -> taken by the encoder shard",
    ),
    (
        "shard_frame_cost",
        "encoder shard: downsample, encode and send one block",
    ),
    (
        "bridge_added",
        "block's last ZMQ message in -> send returned for its last datagram",
    ),
    (
        "e2e",
        "simulator send of the block's last message -> datagram received by the sink",
    ),
];

/// One span of one scenario: medians over its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStat {
    pub scenario: String,
    pub span: &'static str,
    /// Runs that had this span.
    pub runs: usize,
    /// Median number of values recorded per run.
    pub count: f64,
    /// Median p50, p99 and max (ms).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Quantiles of every stage present in one run's files (`bridge_hist`: the bridge's
/// `--histogram-csv`; `latency`: the sink's `latency.csv`, if any). A span missing from a file
/// is left out; a file that does not parse is an error.
pub fn run_stages(
    bridge_hist: &str,
    latency: Option<&str>,
) -> Result<Vec<(&'static str, Quantiles)>, String> {
    let mut out = Vec::new();
    for (span, _) in STAGES {
        let src = if span == "e2e" {
            match latency {
                Some(t) => t,
                None => continue,
            }
        } else {
            bridge_hist
        };
        match stats::hist_quantiles(src, span) {
            Ok(q) => out.push((span, q)),
            Err(e) if e.starts_with("no `") => {}
            Err(e) => return Err(format!("{span}: {e}")),
        }
    }
    Ok(out)
}

/// Medians over the runs of one scenario, per span, in [`STAGES`] order.
pub fn reduce(scenario: &str, runs: &[Vec<(&'static str, Quantiles)>]) -> Vec<StageStat> {
    let mut out = Vec::new();
    for (span, _) in STAGES {
        let qs: Vec<Quantiles> = runs
            .iter()
            .filter_map(|r| r.iter().find(|(s, _)| *s == span).map(|(_, q)| *q))
            .collect();
        if qs.is_empty() {
            continue;
        }
        let med = |f: fn(&Quantiles) -> f64| calc::median(&qs.iter().map(f).collect::<Vec<_>>());
        out.push(StageStat {
            scenario: scenario.to_string(),
            span,
            runs: qs.len(),
            count: med(|q| q.count as f64),
            p50_ms: med(|q| q.ms[0]),
            p99_ms: med(|q| q.ms[2]),
            max_ms: med(|q| q.ms[4]),
        });
    }
    out
}

/// Reads `raw/<scenario>/r*/` (every run directory with a `bridge-hist.csv`) and reduces it.
/// Unreadable or malformed runs are reported in the returned warnings and skipped.
pub fn scenario_stages(raw: &Path, scenario: &str) -> (Vec<StageStat>, Vec<String>) {
    let mut warnings = Vec::new();
    let dir = raw.join(scenario);
    let mut run_dirs: Vec<_> = match fs::read_dir(&dir) {
        Ok(d) => d
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('r'))
            })
            .collect(),
        Err(e) => {
            warnings.push(format!("{}: {e}", dir.display()));
            return (Vec::new(), warnings);
        }
    };
    run_dirs.sort();
    let mut runs = Vec::new();
    for d in run_dirs {
        let Ok(hist) = fs::read_to_string(d.join("bridge-hist.csv")) else {
            warnings.push(format!("{}: no bridge-hist.csv", d.display()));
            continue;
        };
        let lat = fs::read_to_string(d.join("latency.csv")).ok();
        match run_stages(&hist, lat.as_deref()) {
            Ok(r) => runs.push(r),
            Err(e) => warnings.push(format!("{}: {e}", d.display())),
        }
    }
    (reduce(scenario, &runs), warnings)
}

/// The scenarios of a results directory whose stages are shown: the full-rate rows
/// (`<N>ch-sample-F1-…`, including pinned, faithful and contended ones), ordered by channel
/// count, the plain row first, then the variants by name.
pub fn full_rate_scenarios(raw: &Path) -> Vec<String> {
    let mut v: Vec<(u32, bool, String)> = fs::read_dir(raw)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter_map(|n| {
                    let (ch, rest) = n.split_once("ch-")?;
                    let ch: u32 = ch.parse().ok()?;
                    let variant = short_name(&n) != format!("{ch}ch");
                    rest.starts_with("sample-F1-")
                        .then_some((ch, variant, n.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, _, n)| n).collect()
}

/// A short label: the scenario name without the defaults (`-sample-F1`, `-hwm100000`).
pub fn short_name(scenario: &str) -> String {
    scenario.replace("-sample-F1", "").replace("-hwm100000", "")
}

pub const CSV_HEADER: &str = "scenario,span,runs,count,p50_ms,p99_ms,max_ms";

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        String::new()
    }
}

/// `stages.csv`: one line per scenario and span.
pub fn to_csv(stats: &[StageStat]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for t in stats {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            t.scenario,
            t.span,
            t.runs,
            t.count.round(),
            num(t.p50_ms),
            num(t.p99_ms),
            num(t.max_ms)
        );
    }
    s
}

/// The markdown table of `summary.md`: one row per scenario, `p50 / p99` (ms) per span.
pub fn to_markdown(stats: &[StageStat]) -> String {
    let mut s = String::from("| row |");
    for (span, _) in STAGES {
        let _ = write!(s, " `{span}` p50 / p99 |");
    }
    s.push_str(" runs |\n|---|");
    for _ in STAGES {
        s.push_str("---:|");
    }
    s.push_str("---:|\n");
    let mut scenarios: Vec<&str> = Vec::new();
    for t in stats {
        if !scenarios.contains(&t.scenario.as_str()) {
            scenarios.push(&t.scenario);
        }
    }
    for sc in scenarios {
        let _ = write!(s, "| {} |", short_name(sc));
        let mut runs = 0;
        for (span, _) in STAGES {
            match stats.iter().find(|t| t.scenario == sc && t.span == span) {
                Some(t) => {
                    runs = runs.max(t.runs);
                    let _ = write!(s, " {} / {} |", fmt_ms(t.p50_ms), fmt_ms(t.p99_ms));
                }
                None => s.push_str(" - |"),
            }
        }
        let _ = writeln!(s, " {runs} |");
    }
    s.push_str("\nms, medians over the runs of each row. ");
    for (span, what) in STAGES {
        let _ = write!(s, "`{span}`: {what}; ");
    }
    s.truncate(s.trim_end_matches("; ").len());
    s.push_str(".\n");
    s
}

fn fmt_ms(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

/// Reads every full-rate row of a results directory (`<dir>/raw`) and writes `stages.csv` and
/// `stages.svg` into `dir`. Returns the markdown table and the
/// warnings (skipped runs, a plot that could not be drawn).
pub fn write_stages(dir: &Path) -> Result<(String, Vec<String>), String> {
    let raw = dir.join("raw");
    let scenarios = full_rate_scenarios(&raw);
    if scenarios.is_empty() {
        return Err(format!(
            "no full-rate rows (<N>ch-sample-F1-...) under {}",
            raw.display()
        ));
    }
    let mut all = Vec::new();
    let mut warnings = Vec::new();
    for sc in &scenarios {
        let (st, w) = scenario_stages(&raw, sc);
        all.extend(st);
        warnings.extend(w);
    }
    if all.is_empty() {
        return Err(format!("no span histograms under {}", raw.display()));
    }
    let csv_path = dir.join("stages.csv");
    fs::write(&csv_path, to_csv(&all))
        .map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;
    let md = to_markdown(&all);
    if let Err(e) = super::plot::plot_stages(&dir.join("stages.svg"), &all) {
        warnings.push(format!("stages.svg not written: {e}"));
    }
    Ok((md, warnings))
}

/// Heading of the stage table's section in `summary.md`.
pub const SUMMARY_HEADING: &str = "## Where the latency goes (stage by stage)";

/// `summary` with its stage section replaced by `table` (appended when there is none).
pub fn replace_summary_section(summary: &str, table: &str) -> String {
    let section = format!("{SUMMARY_HEADING}\n\n{table}");
    match summary.find(SUMMARY_HEADING) {
        Some(a) => {
            let after = &summary[a + SUMMARY_HEADING.len()..];
            let end = after
                .find("\n## ")
                .map_or(summary.len(), |e| a + SUMMARY_HEADING.len() + e + 1);
            format!("{}{section}\n{}", &summary[..a], &summary[end..])
        }
        None => format!(
            "{}\n{section}",
            summary.trim_end_matches('\n').to_string() + "\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A `--histogram-csv` of the spans with p50 = `p50` µs, p99 = `p99` µs, max = `max` µs
    /// (percentile steps as the bridge writes them).
    fn hist(spans: &[(&str, f64, f64, f64)]) -> String {
        let mut s = String::from("metric,percentile,value_us,count_at_or_below,total_count\n");
        for (name, p50, p99, max) in spans {
            for (p, v, n) in [
                (0.0, p50 / 2.0, 1),
                (50.0, *p50, 50),
                (90.0, (p50 + p99) / 2.0, 90),
                (99.0, *p99, 99),
                (99.9, *p99, 99),
                (100.0, *max, 100),
            ] {
                let _ = writeln!(s, "{name},{p:.6},{v:.3},{n},100");
            }
        }
        s
    }

    fn latency_csv(p50: f64, p99: f64, max: f64) -> String {
        // The sink's header names the fourth column count_in_step.
        hist(&[("e2e", p50, p99, max)]).replace("count_at_or_below", "count_in_step")
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("stages-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(dir: &Path, row: &str, run: u32, hist_csv: &str, lat: Option<&str>) {
        let d = dir.join("raw").join(row).join(format!("r{run}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("bridge-hist.csv"), hist_csv).unwrap();
        if let Some(l) = lat {
            fs::write(d.join("latency.csv"), l).unwrap();
        }
    }

    #[test]
    fn one_run_reads_every_span_and_skips_missing_ones() {
        let h = hist(&[
            ("bridge_added", 1000.0, 2000.0, 22000.0),
            ("block_spread", 1500.0, 3500.0, 3700.0),
            ("publisher_to_wire", 9.0, 9.0, 9.0),
        ]);
        let r = run_stages(&h, Some(&latency_csv(2500.0, 4500.0, 9000.0))).unwrap();
        let names: Vec<&str> = r.iter().map(|(s, _)| *s).collect();
        assert_eq!(names, ["block_spread", "bridge_added", "e2e"]);
        assert_eq!(r[1].1.ms, [1.0, 1.5, 2.0, 2.0, 22.0]);
        assert_eq!(r[2].1.ms[2], 4.5);
        // Without latency.csv there is no e2e; a torn file is an error naming the span.
        assert_eq!(run_stages(&h, None).unwrap().len(), 2);
        let bad = format!("{h}queue_wait,50.0,x,1,1\n");
        assert!(run_stages(&bad, None)
            .unwrap_err()
            .starts_with("queue_wait"));
    }

    #[test]
    fn medians_over_runs_from_a_results_dir() {
        let dir = tmp("reduce");
        let row = "256ch-sample-F1-hwm100000";
        let spans = |q: f64, s: f64| {
            hist(&[
                ("block_spread", 1600.0 * s, 3600.0 * s, 3700.0),
                ("queue_wait", 20.0, 300.0 * q, 21000.0),
                ("shard_frame_cost", 1000.0, 1900.0 * q, 2400.0),
                ("bridge_added", 1050.0, 2000.0 * q, 22000.0 * q),
            ])
        };
        put(
            &dir,
            row,
            1,
            &spans(1.0, 1.0),
            Some(&latency_csv(2500.0, 4600.0, 9e3)),
        );
        put(
            &dir,
            row,
            2,
            &spans(3.0, 2.0),
            Some(&latency_csv(2700.0, 5000.0, 9e3)),
        );
        put(&dir, row, 3, &spans(2.0, 1.0), None);
        // Not full rate, not a run directory: ignored.
        put(
            &dir,
            "256ch-batch-F1-b10-hwm100000",
            1,
            &spans(9.0, 9.0),
            None,
        );
        fs::write(dir.join("raw").join(row).join("notes.txt"), "x").unwrap();
        put(
            &dir,
            "2048ch-sample-F1-hwm100000",
            1,
            &spans(1.0, 1.0),
            None,
        );
        put(
            &dir,
            "256ch-sample-F1-hwm100000-contend",
            1,
            &spans(1.0, 1.0),
            None,
        );
        put(&dir, "16ch-sample-F1-hwm100000", 1, &spans(1.0, 1.0), None);

        assert_eq!(
            full_rate_scenarios(&dir.join("raw")),
            [
                "16ch-sample-F1-hwm100000",
                row,
                "256ch-sample-F1-hwm100000-contend",
                "2048ch-sample-F1-hwm100000"
            ]
        );
        let (st, warn) = scenario_stages(&dir.join("raw"), row);
        assert!(warn.is_empty(), "{warn:?}");
        let get = |span: &str| st.iter().find(|t| t.span == span).unwrap();
        // p99 medians of 1x, 3x, 2x the base: 2x.
        assert_eq!(get("queue_wait").p99_ms, 0.6);
        assert_eq!(get("shard_frame_cost").p99_ms, 3.8);
        assert_eq!(get("bridge_added").max_ms, 44.0);
        assert_eq!(get("block_spread").p50_ms, 1.6);
        assert_eq!(get("block_spread").runs, 3);
        // e2e from the two runs that have it: mean of the middle two.
        assert_eq!(get("e2e").runs, 2);
        assert!((get("e2e").p50_ms - 2.6).abs() < 1e-12);
        assert!((get("e2e").p99_ms - 4.8).abs() < 1e-12);
        assert_eq!(get("e2e").count, 100.0);

        let (md, warn) = write_stages(&dir).unwrap();
        assert!(warn.is_empty(), "{warn:?}");
        let csv = fs::read_to_string(dir.join("stages.csv")).unwrap();
        assert!(csv.starts_with(CSV_HEADER));
        assert!(
            csv.contains(&format!("\n{row},queue_wait,3,100,0.020,0.600,21.000\n")),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 1 + 5 + 3 * 4);
        assert!(md.contains("| 256ch | 1.60 / 3.60 | 0.02 / 0.60 | 1.00 / 3.80 | 1.05 / 4.00 | 2.60 / 4.80 | 3 |"), "{md}");
        assert!(md.contains("| 2048ch | "));
        assert!(fs::metadata(dir.join("stages.svg")).unwrap().len() > 1000);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_or_missing_results_are_an_error() {
        let dir = tmp("empty");
        assert!(write_stages(&dir)
            .unwrap_err()
            .contains("no full-rate rows"));
        put(
            &dir,
            "64ch-sample-F1-hwm100000",
            1,
            "metric,percentile,value_us,count_at_or_below,total_count\n",
            None,
        );
        assert!(write_stages(&dir)
            .unwrap_err()
            .contains("no span histograms"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn summary_section_is_replaced_or_appended() {
        let t = "| a |\n";
        let s = format!(
            "# R\n\n## Medians\n\nx\n\n{SUMMARY_HEADING}\n\nold table\n\n## Baselines\n\ny\n"
        );
        let r = replace_summary_section(&s, t);
        assert_eq!(
            r,
            format!("# R\n\n## Medians\n\nx\n\n{SUMMARY_HEADING}\n\n| a |\n\n## Baselines\n\ny\n")
        );
        assert_eq!(replace_summary_section(&r, t), r);
        let last = format!("# R\n\n{SUMMARY_HEADING}\n\nold\n");
        assert_eq!(
            replace_summary_section(&last, t),
            format!("# R\n\n{SUMMARY_HEADING}\n\n| a |\n\n")
        );
        assert_eq!(
            replace_summary_section("# R\n", t),
            format!("# R\n\n{SUMMARY_HEADING}\n\n| a |\n")
        );
    }
}
