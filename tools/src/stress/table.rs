//! Named CSV rows: a row is a list of `(column, cell)` pairs, so a file's header and its
//! values come from the same list and cannot drift apart. Repeated runs of one scenario reduce
//! to a median row ([`median_row`]), and the scaling fit reads the median rows back from CSV
//! ([`scaling_report`]).

use super::calc::{median, LinearFit};
use std::fmt::Write as _;

/// One CSV cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text (quoted on output when it holds a comma, a quote or a line break).
    Text(String),
    /// An integer count.
    Int(u64),
    /// A number with this many decimals; non-finite values are written as an empty cell.
    Num(f64, usize),
}

impl Cell {
    /// Text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }
    /// The cell as a number (`None` for text and non-finite numbers).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(n) => Some(*n as f64),
            Cell::Num(x, _) if x.is_finite() => Some(*x),
            _ => None,
        }
    }
    fn render(&self) -> String {
        match self {
            Cell::Text(s) => quote(s),
            Cell::Int(n) => n.to_string(),
            Cell::Num(x, d) if x.is_finite() => format!("{x:.d$}"),
            Cell::Num(..) => String::new(),
        }
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"").replace(['\n', '\r'], " "))
    } else {
        s.to_string()
    }
}

/// One CSV row: named cells in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub Vec<(&'static str, Cell)>);

impl Row {
    /// Appends a column.
    pub fn push(&mut self, name: &'static str, cell: Cell) -> &mut Row {
        self.0.push((name, cell));
        self
    }
    /// The CSV header of this row's columns.
    pub fn header(&self) -> String {
        self.0.iter().map(|c| c.0).collect::<Vec<_>>().join(",")
    }
    /// The CSV line of this row.
    pub fn line(&self) -> String {
        self.0
            .iter()
            .map(|c| c.1.render())
            .collect::<Vec<_>>()
            .join(",")
    }
    /// A cell by column name.
    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.0.iter().find(|c| c.0 == name).map(|c| &c.1)
    }
    /// A numeric cell by column name.
    pub fn num(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Cell::as_f64)
    }
}

/// The median of repeated runs of one scenario: numeric columns take the median of their
/// finite values (integers stay integers when the median is whole), text columns keep their
/// value when every run agrees and become `varies` otherwise; `label_col` is set to `label`.
/// All rows must have the same columns (the first row's are used).
pub fn median_row(rows: &[Row], label_col: &str, label: &str) -> Option<Row> {
    let first = rows.first()?;
    let mut out = Row::default();
    for (i, (name, cell)) in first.0.iter().enumerate() {
        let col: Vec<&Cell> = rows
            .iter()
            .filter_map(|r| r.0.get(i).map(|c| &c.1))
            .collect();
        let merged = if *name == label_col {
            Cell::text(label)
        } else {
            match cell {
                Cell::Text(t) => {
                    if col.iter().all(|c| matches!(c, Cell::Text(u) if u == t)) {
                        Cell::Text(t.clone())
                    } else {
                        Cell::text("varies")
                    }
                }
                Cell::Int(_) | Cell::Num(..) => {
                    let vals: Vec<f64> = col.iter().filter_map(|c| c.as_f64()).collect();
                    let m = median(&vals);
                    let decimals = col
                        .iter()
                        .map(|c| match c {
                            Cell::Num(_, d) => *d,
                            _ => 0,
                        })
                        .max()
                        .unwrap_or(0);
                    if matches!(cell, Cell::Int(_)) && m.is_finite() && m.fract() == 0.0 {
                        Cell::Int(m as u64)
                    } else {
                        Cell::Num(m, decimals.max(1))
                    }
                }
            }
        };
        out.0.push((name, merged));
    }
    Some(out)
}

/// Splits one CSV line (double-quoted fields may hold commas; `""` is a quote).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The scaling model from the median rows of a matrix CSV: for the full-rate rows (sample
/// mode, F = 1, not the faithful PUB HWM 1000 row, not pinned, no contention) a least-squares
/// line `CPU % = a + b × channels` for the whole bridge and for each hot thread, and the
/// channel count at which each line reaches 100 % of one core. A single thread at 100 % is
/// the limit (the process total may exceed 100 % on several cores).
pub fn scaling_report(csv: &str) -> Result<String, String> {
    let mut lines = csv.lines();
    let header = split_csv(lines.next().ok_or("empty matrix CSV")?);
    let idx = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| format!("matrix CSV has no `{n}` column"))
    };
    let (run, mode, factor, hwm, pinned, contend, ch) = (
        idx("run")?,
        idx("mode")?,
        idx("factor")?,
        idx("pub_hwm")?,
        idx("pinned")?,
        idx("contend")?,
        idx("channels")?,
    );
    let metrics = [
        ("bridge_cpu_pct", "whole bridge (all threads)"),
        ("zmq_rx_cpu_pct", "zmq_rx thread (receive + assembly)"),
        ("osc_tx_cpu_pct", "osc_tx thread(s) (encode + send)"),
    ];
    let cols: Vec<usize> = metrics.iter().map(|m| idx(m.0)).collect::<Result<_, _>>()?;
    let mut points: Vec<Vec<(f64, f64)>> = vec![Vec::new(); metrics.len()];
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = split_csv(line);
        let at = |i: usize| f.get(i).map_or("", String::as_str);
        if at(run) != "median"
            || at(mode) != "sample"
            || at(factor) != "1"
            || at(hwm) == "1000"
            || at(pinned) != "no"
            || at(contend) != "no"
        {
            continue;
        }
        let Ok(x) = at(ch).parse::<f64>() else {
            continue;
        };
        for (k, &c) in cols.iter().enumerate() {
            if let Ok(y) = at(c).parse::<f64>() {
                points[k].push((x, y));
            }
        }
    }
    let mut out = String::from(
        "Scaling model: least squares CPU % of one core = a + b x channels, over the median rows\n\
         of full-rate runs (sample mode, F = 1, PUB HWM 100 000, unpinned, no contention).\n\n",
    );
    let mut any = false;
    for (k, (name, what)) in metrics.iter().enumerate() {
        let xs: Vec<String> = points[k].iter().map(|p| format!("{}", p.0)).collect();
        match LinearFit::fit(&points[k]) {
            Some(f) => {
                any = true;
                let _ = writeln!(
                    out,
                    "{name} ({what}): a = {:.3} %, b = {:.5} % per channel, r^2 = {:.4}, n = {} (channels {})",
                    f.a,
                    f.b,
                    f.r2,
                    f.n,
                    xs.join(", ")
                );
                let _ = match f.x_at(100.0) {
                    Some(x) => {
                        writeln!(out, "  reaches 100 % of one core at about {x:.0} channels")
                    }
                    None => writeln!(
                        out,
                        "  does not grow with channels: no saturation predicted"
                    ),
                };
            }
            None => {
                let _ = writeln!(
                    out,
                    "{name}: not enough points to fit (need two channel counts, have {})",
                    points[k].len()
                );
            }
        }
    }
    if !any {
        return Err(format!(
            "no full-rate median rows to fit in the matrix CSV\n{out}"
        ));
    }
    out.push_str(
        "\nA straight line is a model, not a measurement: check it against the largest measured row.\n",
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, cpu: f64, n: u64, exit: &str) -> Row {
        let mut r = Row::default();
        r.push("scenario", Cell::text("256ch-sample-F1"))
            .push("run", Cell::text(run))
            .push("rows", Cell::Int(n))
            .push("cpu", Cell::Num(cpu, 2))
            .push("note", Cell::text(exit));
        r
    }

    #[test]
    fn header_and_line_have_the_same_columns() {
        let mut r = row("1", 9.256, 30_000, "a, \"b\"");
        r.push("missing", Cell::Num(f64::NAN, 3));
        assert_eq!(r.header(), "scenario,run,rows,cpu,note,missing");
        assert_eq!(r.line(), "256ch-sample-F1,1,30000,9.26,\"a, \"\"b\"\"\",");
        assert_eq!(split_csv(&r.line()).len(), split_csv(&r.header()).len());
        assert_eq!(split_csv(&r.line())[4], "a, \"b\"");
        assert_eq!(r.num("cpu"), Some(9.256));
        assert_eq!(r.num("note"), None);
        assert_eq!(r.num("missing"), None);
    }

    #[test]
    fn median_of_runs() {
        let rows = [
            row("1", 9.0, 10, "ok"),
            row("2", 12.0, 30, "ok"),
            row("3", f64::NAN, 20, "ok"),
        ];
        let m = median_row(&rows, "run", "median").unwrap();
        assert_eq!(m.get("run"), Some(&Cell::text("median")));
        assert_eq!(m.get("scenario"), Some(&Cell::text("256ch-sample-F1")));
        assert_eq!(m.get("rows"), Some(&Cell::Int(20)));
        // NaN is left out: median of 9 and 12.
        assert_eq!(m.num("cpu"), Some(10.5));
        assert_eq!(m.get("note"), Some(&Cell::text("ok")));
        let rows = [row("1", 1.0, 1, "ok"), row("2", 2.0, 2, "exit 2")];
        let m = median_row(&rows, "run", "median").unwrap();
        assert_eq!(m.get("note"), Some(&Cell::text("varies")));
        assert_eq!(m.get("rows"), Some(&Cell::Num(1.5, 1)));
        assert_eq!(m.header(), rows[0].header());
        assert!(median_row(&[], "run", "median").is_none());
    }

    #[test]
    fn scaling_from_median_rows() {
        let mut csv = String::from(
            "scenario,run,channels,mode,factor,pub_hwm,pinned,contend,bridge_cpu_pct,zmq_rx_cpu_pct,osc_tx_cpu_pct\n",
        );
        for ch in [16u32, 256, 1024] {
            let c = f64::from(ch);
            let _ = writeln!(
                csv,
                "x,median,{ch},sample,1,100000,no,no,{},{},{}",
                2.0 + 0.02 * c,
                0.5 + 0.007 * c,
                2.0 + 0.005 * c
            );
            // Rows that must not enter the fit.
            let _ = writeln!(csv, "x,1,{ch},sample,1,100000,no,no,99,99,99");
            let _ = writeln!(csv, "x,median,{ch},sample,1,100000,yes,no,99,99,99");
            let _ = writeln!(csv, "x,median,{ch},sample,1,1000,no,no,99,99,99");
            let _ = writeln!(csv, "x,median,{ch},batch,1,100000,no,no,99,99,99");
        }
        let rep = scaling_report(&csv).unwrap();
        assert!(
            rep.contains("bridge_cpu_pct (whole bridge (all threads)): a = 2.000 %, b = 0.02000 % per channel, r^2 = 1.0000, n = 3"),
            "{rep}"
        );
        assert!(
            rep.contains("reaches 100 % of one core at about 4900 channels"),
            "{rep}"
        );
        assert!(rep.contains("at about 14214 channels"), "{rep}");
        let only_header = csv.lines().next().unwrap().to_string();
        assert!(scaling_report(&only_header).is_err());
        assert!(scaling_report("a,b\n1,2\n").unwrap_err().contains("`run`"));
    }
}
