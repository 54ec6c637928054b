//! Presets of `performance.mode`, applied to every key the file did not set explicitly.

use super::{Config, PerformanceMode};

impl Config {
    /// Applies the presets of `performance.mode` to every key the file did not set
    /// explicitly, and returns one line per preset applied.
    ///
    /// * `balanced` (what generated files hold): nothing changes — the original's wire
    ///   behaviour.
    /// * `low_latency`: `osc_queue_max_size` 10 (a stale queue is worse than a drop), plain
    ///   messages (`enable_batching` false), `realtime_priority` 20 (`SCHED_FIFO` where
    ///   permitted); hot threads spin 500 µs before parking.
    /// * `high_throughput`: `enable_batching` true with `batch_size` 10 (10× fewer
    ///   datagrams), `osc_queue_max_size` 200; hot threads park after 5 µs.
    ///
    /// Every output keeps its own shard whatever the mode.
    pub fn apply_mode_presets(&mut self) -> Vec<String> {
        const BATCHING: &[&str] = &[
            "performance.enable_batching",
            "osc.processing.enable_batching",
        ];
        const QUEUE: &[&str] = &["performance.osc_queue_max_size"];
        const BATCH_SIZE: &[&str] = &["osc.processing.batch_size"];
        const REALTIME: &[&str] = &["performance.realtime_priority"];
        let mode = self.performance.mode;
        let mut applied = Vec::new();
        let mut set = |cfg: &mut Config, line: &str, keys: &[&str], apply: fn(&mut Config)| {
            if !keys.iter().any(|k| cfg.explicit.contains(*k)) {
                apply(cfg);
                applied.push(format!("performance.mode {} preset: {line}", mode.as_str()));
            }
        };
        match mode {
            PerformanceMode::Balanced => {}
            PerformanceMode::LowLatency => {
                set(self, "performance.osc_queue_max_size = 10", QUEUE, |c| {
                    c.performance.osc_queue_max_size = 10
                });
                set(self, "performance.enable_batching = false", BATCHING, |c| {
                    c.performance.enable_batching = false
                });
                set(self, "performance.realtime_priority = 20", REALTIME, |c| {
                    c.performance.realtime_priority = 20
                });
            }
            PerformanceMode::HighThroughput => {
                set(self, "performance.enable_batching = true", BATCHING, |c| {
                    c.performance.enable_batching = true
                });
                set(self, "osc.processing.batch_size = 10", BATCH_SIZE, |c| {
                    c.osc.processing.batch_size = 10
                });
                set(self, "performance.osc_queue_max_size = 200", QUEUE, |c| {
                    c.performance.osc_queue_max_size = 200
                });
            }
        }
        applied
    }
}
