//! Output files, the commit, formatting helpers and the scaling report.

use super::scenarios::*;
use crate::stress::table::{self, Row};
use oe_testkit::sim::BlockSize;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CSV written row by row (the header with the first row), so a crashed run keeps its rows.
pub struct CsvOut {
    pub path: PathBuf,
    pub started: bool,
}

impl CsvOut {
    pub fn create(path: PathBuf) -> CsvOut {
        let _ = fs::remove_file(&path);
        CsvOut {
            path,
            started: false,
        }
    }
    pub fn write(&mut self, row: &Row) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.path.display()));
        if !self.started {
            let _ = writeln!(f, "{}", row.header());
            self.started = true;
        }
        let _ = writeln!(f, "{}", row.line());
    }
}

pub fn cmd_out(cmd: &str, args: &[&str], dir: &Path) -> Option<String> {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `git rev-parse --short HEAD` of the workspace, plus `-dirty` when tracked or untracked files
/// outside results/ differ from HEAD (results/ is what a run writes).
pub fn head_commit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let Some(head) = cmd_out("git", &["rev-parse", "--short", "HEAD"], root) else {
        return "unknown".into();
    };
    let dirty = cmd_out(
        "git",
        &["status", "--porcelain", "--", ".", ":(exclude)results"],
        root,
    )
    .is_none_or(|s| !s.is_empty());
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

pub fn parse_block(s: &str) -> Result<(BlockSize, usize), String> {
    if s == "gui" {
        Ok((BlockSize::Gui, BlockSize::gui_block(RATE)))
    } else {
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok((BlockSize::Fixed(n), n)),
            _ => Err(format!("--block must be `gui` or a sample count, not {s}")),
        }
    }
}

pub fn fmt_dur(d: f64) -> String {
    let s = d.max(0.0).round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

pub fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

pub fn f1(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-".into()
    }
}

pub fn write_scaling(csv_path: &Path, out: &Path) -> Result<String, String> {
    let csv = fs::read_to_string(csv_path)
        .map_err(|e| format!("cannot read {}: {e}", csv_path.display()))?;
    let rep = table::scaling_report(&csv)?;
    fs::write(out, &rep).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(rep)
}
