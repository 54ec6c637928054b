//! The command line of `stress`.

use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "stress",
    about = "Results matrix for openephys-zmq2osc (simulator + sink in-process, bridge as a child)",
    after_help = "The full matrix (the default flags, 3 repeats) takes about 12 minutes; \
                  tools/results.sh builds and runs it into results/."
)]
pub struct Opt {
    /// Channel counts (0..N) of the full-rate rows (sample mode, F = 1). Rows above 2048 ch
    /// (e.g. `--channels 2048,3072,4096 --variants-at 0 --faithful-at 0 --pinned-at 0`) are
    /// not in the default matrix: on 2 cores the simulator, the sink and the bridge share the
    /// machine; summary.md's instrument table says whether the simulator kept up (`sim late`).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16u32, 64, 256, 512, 1024, 2048])]
    pub channels: Vec<u32>,
    /// Output modes: sample, batch.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["sample".to_string(), "batch".to_string()])]
    pub modes: Vec<String>,
    /// Downsampling factors F.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1u32, 30])]
    pub factors: Vec<u32>,
    /// Channel counts that get every mode × factor; the other channel counts get the
    /// full-rate row (sample, F = 1) only (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    pub variants_at: Vec<u32>,
    /// Rows per batch in batch mode.
    #[arg(long, default_value_t = 10)]
    pub batch: u32,
    /// Simulator streaming time per run (s).
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
    /// Runs of every scenario and baseline; the CSVs keep every run plus a median row.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Block shape: `gui` (constant int(1024·fs/44100) = 696 at 30 kHz) or a fixed sample count.
    #[arg(long, default_value = "gui")]
    pub block: String,
    /// Simulator PUB high-water mark(s). 1000 = the plugin's libzmq default (faithful).
    #[arg(long, value_delimiter = ',', default_values_t = vec![100_000i32])]
    pub pub_hwm: Vec<i32>,
    /// Channel counts that also get a faithful row (PUB HWM 1000, sample mode, F = 1)
    /// (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1024u32])]
    pub faithful_at: Vec<u32>,
    /// Channel counts that also get a pinned full-rate row (the bridge runs with `--pin`)
    /// (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    pub pinned_at: Vec<u32>,
    /// Also run contended full-rate rows: a thread beside the simulator burns a core.
    #[arg(long)]
    pub contend: bool,
    /// `performance.realtime_priority` for an extra contended row per channel count (0 = none).
    #[arg(long, default_value_t = 20)]
    pub realtime: u8,
    /// Channel counts of the contended rows.
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    pub contend_at: Vec<u32>,
    /// Time of each baseline (bare ZeroMQ drain and raw UDP) per channel count and repeat (s);
    /// 0 skips the baselines.
    #[arg(long, default_value_t = 4.0)]
    pub baseline_seconds: f64,
    /// Output directory.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Smoke test: 16 and 256 channels, sample F = 1 only, 2 s, 1 repeat, 2 s baselines.
    #[arg(long)]
    pub quick: bool,
    /// Instead of the matrix: one long run (sample, F = 1) of this many seconds, sampled every
    /// 10 s, written under `<out>/soak/`.
    #[arg(long, value_name = "SECONDS")]
    pub soak: Option<f64>,
    /// Channels of the soak run.
    #[arg(long, default_value_t = 256)]
    pub soak_channels: u32,
    /// Instead of running: print the scaling fit of an existing matrix CSV (its median rows)
    /// and write it to `scaling.txt` beside the CSV.
    #[arg(long, value_name = "MATRIX_CSV")]
    pub fit: Option<PathBuf>,
    /// Instead of running: re-read the raw span histograms of an existing results directory
    /// (`DIR/raw/<row>/r<k>/`) and rewrite `DIR/stages.csv`, `DIR/stages.svg` and the stage
    /// table of `DIR/summary.md`.
    #[arg(long, value_name = "DIR")]
    pub replot: Option<PathBuf>,
    /// Blocks at the start of each run whose rows get no end-to-end latency sample (start-up;
    /// delivery counts every row regardless).
    #[arg(long, default_value_t = 2)]
    pub latency_skip_blocks: u64,
    /// Commit recorded in the CSVs (default: `git rev-parse --short HEAD` of the workspace,
    /// plus `-dirty` when files outside results/ differ from HEAD).
    #[arg(long)]
    pub commit: Option<String>,
    /// Bridge binary (default: `openephys-zmq2osc` next to this executable).
    #[arg(long)]
    pub bridge: Option<PathBuf>,
}
