//! Pinning the hot threads (`zmq_rx`, `osc_tx_N`) to cores, and the report of what happened.
//!
//! The plan is made before the threads start: hot thread `i` (the receivers first, one per
//! source: `zmq_rx`, or `zmq_rx_<name>` with several sources; then the shards) goes on the `i`-th core counted from the last one, wrapping round when there are
//! fewer cores than hot threads. Each thread pins itself first thing (`core_affinity`
//! acts on the calling thread) and reports whether the call succeeded back to
//! [`crate::engine::Engine::start`], which waits for every answer, so the start-up line and the
//! JSON stats say what is true.

use serde_json::{json, Value};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinRequest {
    /// Never pin (`--no-pin`, or `performance.pin_threads: false`).
    #[default]
    Off,
    /// Pin when there are enough cores: hot threads + 1 (libzmq's I/O thread and the rest).
    Auto,
    /// Pin even on few cores (`--pin`): distinct cores while they last, then wrap round.
    Force,
}

impl PinRequest {
    /// `off`, `auto` or `force`.
    pub fn as_str(self) -> &'static str {
        match self {
            PinRequest::Off => "off",
            PinRequest::Auto => "auto",
            PinRequest::Force => "force",
        }
    }
}

/// Where one hot thread went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPin {
    /// Thread name (`zmq_rx`, `osc_tx_N`).
    pub thread: String,
    /// Core id it was pinned to.
    pub core: usize,
    /// `core_affinity::set_for_current` succeeded.
    pub ok: bool,
}

/// What pinning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinReport {
    /// The request ([`PinRequest::as_str`]).
    pub requested: &'static str,
    /// One entry per hot thread when pinning was attempted (empty when skipped).
    pub threads: Vec<ThreadPin>,
    /// Why pinning was not attempted (`None` when it was).
    pub skipped: Option<String>,
}

impl PinReport {
    /// One line for the start-up report, e.g. `force: zmq_rx on core 1 (ok), osc_tx_0 on core
    /// 0 (ok)` or `skipped: ...`.
    pub fn describe(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("{}: skipped: {why}", self.requested);
        }
        let list = self
            .threads
            .iter()
            .map(|t| {
                format!(
                    "{} on core {} ({})",
                    t.thread,
                    t.core,
                    if t.ok { "ok" } else { "FAILED, runs unpinned" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("{}: {list}", self.requested)
    }

    /// `{"requested": "force", "threads": [{"thread": "zmq_rx", "core": 1, "ok": true}, ...],
    /// "skipped": null}` (the JSON stats' `pinning` key).
    pub fn to_json(&self) -> Value {
        json!({
            "requested": self.requested,
            "threads": self.threads.iter().map(|t| json!({
                "thread": t.thread, "core": t.core, "ok": t.ok
            })).collect::<Vec<_>>(),
            "skipped": self.skipped,
        })
    }
}

/// Name of hot thread `i` with a single source (0 = receiver).
pub fn hot_thread_name(i: usize) -> String {
    if i == 0 {
        "zmq_rx".into()
    } else {
        format!("osc_tx_{}", i - 1)
    }
}

/// The cores for `hot` threads given the available `cores`, or why none.
pub fn plan(
    request: PinRequest,
    cores: &[core_affinity::CoreId],
    hot: usize,
) -> Result<Vec<core_affinity::CoreId>, String> {
    match request {
        PinRequest::Off => Err("not requested (--no-pin)".into()),
        _ if cores.is_empty() => Err("the list of usable cores is not available here".into()),
        PinRequest::Auto if cores.len() < hot + 1 => Err(format!(
            "{} cores < {} ({hot} hot threads + libzmq I/O and other processes); --pin forces it",
            cores.len(),
            hot + 1
        )),
        _ => {
            let n = cores.len();
            Ok((0..hot).map(|i| cores[n - 1 - (i % n)]).collect())
        }
    }
}

/// Collects each hot thread's pinning result.
pub(crate) struct PinResults {
    tx: SyncSender<(usize, bool)>,
    rx: Receiver<(usize, bool)>,
}

impl PinResults {
    pub(crate) fn new(hot: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(hot.max(1));
        PinResults { tx, rx }
    }

    /// For hot thread `index`: pins the calling thread to `core` (if any) and reports.
    pub(crate) fn pinner(&self, index: usize, core: Option<core_affinity::CoreId>) -> Pinner {
        Pinner {
            index,
            core,
            tx: self.tx.clone(),
        }
    }

    /// Waits (bounded) for every planned thread's answer and builds the report.
    /// `names[i]` is hot thread `i`'s name.
    pub(crate) fn report(
        self,
        request: PinRequest,
        plan: Result<Vec<core_affinity::CoreId>, String>,
        names: &[String],
    ) -> PinReport {
        let cores = match plan {
            Err(why) => {
                return PinReport {
                    requested: request.as_str(),
                    threads: Vec::new(),
                    skipped: Some(why),
                }
            }
            Ok(c) => c,
        };
        drop(self.tx);
        let mut ok = vec![false; cores.len()];
        for _ in 0..cores.len() {
            // A thread that dies before answering counts as failed.
            match self.rx.recv_timeout(Duration::from_secs(10)) {
                Ok((i, r)) => {
                    if let Some(o) = ok.get_mut(i) {
                        *o = r;
                    }
                }
                Err(_) => break,
            }
        }
        PinReport {
            requested: request.as_str(),
            threads: cores
                .iter()
                .zip(ok)
                .enumerate()
                .map(|(i, (c, ok))| ThreadPin {
                    thread: names.get(i).cloned().unwrap_or_else(|| hot_thread_name(i)),
                    core: c.id,
                    ok,
                })
                .collect(),
            skipped: None,
        }
    }
}

/// Moved into a hot thread: pins it and reports once.
pub(crate) struct Pinner {
    index: usize,
    core: Option<core_affinity::CoreId>,
    tx: SyncSender<(usize, bool)>,
}

impl Pinner {
    /// Pins the calling thread (when planned) and reports the result. Start-up only.
    pub(crate) fn pin(self) {
        if let Some(c) = self.core {
            let ok = core_affinity::set_for_current(c);
            let _ = self.tx.try_send((self.index, ok));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_affinity::CoreId;

    #[test]
    fn plans_distinct_cores_and_wraps_when_forced() {
        let cores: Vec<CoreId> = (0..2).map(|id| CoreId { id }).collect();
        let ids =
            |r: Result<Vec<CoreId>, String>| r.unwrap().iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(plan(PinRequest::Force, &cores, 2)), vec![1, 0]);
        assert_eq!(ids(plan(PinRequest::Force, &cores, 3)), vec![1, 0, 1]);
        let why = plan(PinRequest::Auto, &cores, 2).unwrap_err();
        assert!(why.contains("2 cores < 3"), "{why}");
        assert!(plan(PinRequest::Off, &cores, 2).is_err());
        assert!(plan(PinRequest::Force, &[], 2).is_err());
        let four: Vec<CoreId> = (0..4).map(|id| CoreId { id }).collect();
        assert_eq!(ids(plan(PinRequest::Auto, &four, 2)), vec![3, 2]);
    }

    #[test]
    fn report_describes_and_serialises() {
        let r = PinReport {
            requested: "force",
            threads: vec![
                ThreadPin {
                    thread: "zmq_rx".into(),
                    core: 1,
                    ok: true,
                },
                ThreadPin {
                    thread: "osc_tx_0".into(),
                    core: 0,
                    ok: false,
                },
            ],
            skipped: None,
        };
        assert_eq!(
            r.describe(),
            "force: zmq_rx on core 1 (ok), osc_tx_0 on core 0 (FAILED, runs unpinned)"
        );
        let v = r.to_json();
        assert_eq!(v["threads"][0]["thread"], "zmq_rx");
        assert_eq!(v["threads"][1]["ok"], false);
        assert!(v["skipped"].is_null());
        let s = PinReport {
            requested: "auto",
            threads: vec![],
            skipped: Some("few cores".into()),
        };
        assert_eq!(s.describe(), "auto: skipped: few cores");
        assert_eq!(s.to_json()["skipped"], "few cores");
    }

    #[test]
    fn report_names_every_planned_hot_thread() {
        // Two sources and two outputs: four hot threads, each receiver and each shard.
        let names: Vec<String> = ["zmq_rx_a", "zmq_rx_b", "osc_tx_0", "osc_tx_1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cores: Vec<CoreId> = (0..8).map(|id| CoreId { id }).collect();
        let plan = plan(PinRequest::Auto, &cores, names.len()).unwrap();
        assert_eq!(plan.len(), 4);
        let results = PinResults::new(names.len());
        for (i, core) in plan.iter().enumerate() {
            // What each thread's `pin()` reports (without pinning the test thread).
            let p = results.pinner(i, Some(*core));
            p.tx.try_send((i, i != 2)).unwrap();
        }
        let r = results.report(PinRequest::Auto, Ok(plan), &names);
        let got: Vec<(&str, usize, bool)> = r
            .threads
            .iter()
            .map(|t| (t.thread.as_str(), t.core, t.ok))
            .collect();
        assert_eq!(
            got,
            [
                ("zmq_rx_a", 7, true),
                ("zmq_rx_b", 6, true),
                ("osc_tx_0", 5, false),
                ("osc_tx_1", 4, true)
            ]
        );
    }
}
