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
    /// `performance.realtime_priority` (0 = off) and what each thread got: every hot thread,
    /// then libzmq's I/O threads.
    pub realtime: (u8, Vec<super::sched::SchedOutcome>),
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
            "realtime": self.realtime_json(),
        })
    }

    /// `{"priority": P, "threads": [{"thread", "ok", "why"}]}`, or `null` when off.
    pub fn realtime_json(&self) -> Value {
        let (prio, list) = &self.realtime;
        if *prio == 0 {
            return Value::Null;
        }
        json!({
            "policy": "SCHED_FIFO",
            "priority": prio,
            "threads": list.iter().map(|o| json!({
                "thread": o.thread, "ok": o.ok, "why": o.why
            })).collect::<Vec<_>>(),
        })
    }

    /// One line on real-time scheduling for the start-up report (`None` when off).
    pub fn describe_realtime(&self) -> Option<String> {
        let (prio, list) = &self.realtime;
        if *prio == 0 {
            return None;
        }
        let ok: Vec<&str> = list
            .iter()
            .filter(|o| o.ok)
            .map(|o| o.thread.as_str())
            .collect();
        let failed: Vec<String> = list
            .iter()
            .filter(|o| !o.ok)
            .map(|o| format!("{}: {}", o.thread, o.why))
            .collect();
        let mut s = format!("SCHED_FIFO {prio}: ");
        if !ok.is_empty() {
            s.push_str(&ok.join(", "));
        }
        if !failed.is_empty() {
            if !ok.is_empty() {
                s.push_str("; ");
            }
            s.push_str("NOT for ");
            s.push_str(&failed.join("; "));
        }
        Some(s)
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
/// One hot thread's answer: (index, pinned: `None` when not planned, real-time outcome).
type Answer = (usize, Option<bool>, Option<super::sched::SchedOutcome>);

pub(crate) struct PinResults {
    tx: SyncSender<Answer>,
    rx: Receiver<Answer>,
    realtime: u8,
}

impl PinResults {
    /// For `hot` threads; `realtime` is `performance.realtime_priority` (0 = off).
    pub(crate) fn new(hot: usize, realtime: u8) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(hot.max(1));
        PinResults { tx, rx, realtime }
    }

    /// For hot thread `index`: pins the calling thread to `core` (if any), puts it on the
    /// real-time scheduler (if asked) and reports.
    pub(crate) fn pinner(&self, index: usize, core: Option<core_affinity::CoreId>) -> Pinner {
        Pinner {
            index,
            core,
            realtime: self.realtime,
            tx: self.tx.clone(),
        }
    }

    /// Waits (bounded) for every thread's answer and builds the report. `names[i]` is hot
    /// thread `i`'s name; `extra` are outcomes for other threads (libzmq's I/O thread).
    pub(crate) fn report(
        self,
        request: PinRequest,
        plan: Result<Vec<core_affinity::CoreId>, String>,
        names: &[String],
        extra: Vec<super::sched::SchedOutcome>,
    ) -> PinReport {
        let name = |i: usize| names.get(i).cloned().unwrap_or_else(|| hot_thread_name(i));
        // Every hot thread answers when real-time is asked; else only the planned ones.
        let expected = if self.realtime > 0 {
            names.len()
        } else {
            plan.as_ref().map_or(0, |c| c.len())
        };
        drop(self.tx);
        let mut pinned = vec![false; names.len().max(plan.as_ref().map_or(0, |c| c.len()))];
        let mut rt: Vec<Option<super::sched::SchedOutcome>> = vec![None; names.len()];
        for _ in 0..expected {
            // A thread that dies before answering counts as failed.
            match self.rx.recv_timeout(Duration::from_secs(10)) {
                Ok((i, p, r)) => {
                    if let (Some(p), Some(slot)) = (p, pinned.get_mut(i)) {
                        *slot = p;
                    }
                    if let Some(slot) = rt.get_mut(i) {
                        *slot = r;
                    }
                }
                Err(_) => break,
            }
        }
        let mut realtime: Vec<super::sched::SchedOutcome> = rt
            .into_iter()
            .enumerate()
            .filter(|_| self.realtime > 0)
            .map(|(i, o)| {
                let mut o = o.unwrap_or_else(|| super::sched::SchedOutcome {
                    thread: String::new(),
                    ok: false,
                    why: "no answer from the thread".into(),
                });
                o.thread = name(i);
                o
            })
            .collect();
        realtime.extend(extra);
        let (threads, skipped) = match plan {
            Err(why) => (Vec::new(), Some(why)),
            Ok(cores) => (
                cores
                    .iter()
                    .zip(pinned)
                    .enumerate()
                    .map(|(i, (c, ok))| ThreadPin {
                        thread: name(i),
                        core: c.id,
                        ok,
                    })
                    .collect(),
                None,
            ),
        };
        PinReport {
            requested: request.as_str(),
            threads,
            skipped,
            realtime: (self.realtime, realtime),
        }
    }
}

/// Moved into a hot thread: pins it and reports once.
pub(crate) struct Pinner {
    index: usize,
    core: Option<core_affinity::CoreId>,
    realtime: u8,
    tx: SyncSender<Answer>,
}

impl Pinner {
    /// Pins the calling thread (when planned), puts it on `SCHED_FIFO` (when asked) and reports
    /// the results. Start-up only. Returns true when the thread runs on `SCHED_FIFO`: it then
    /// parks without spinning (a woken real-time thread runs at once, and a spinning one would
    /// keep an equal-priority thread, such as libzmq's I/O thread, off its core on a small
    /// machine). Refused, the thread spins as the mode says.
    pub(crate) fn pin(self) -> bool {
        let pinned = self.core.map(core_affinity::set_for_current);
        let rt = (self.realtime > 0).then(|| super::sched::set_current("", self.realtime));
        let fifo = rt.as_ref().is_some_and(|o| o.ok);
        if pinned.is_some() || rt.is_some() {
            let _ = self.tx.try_send((self.index, pinned, rt));
        }
        fifo
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
            realtime: (0, Vec::new()),
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
            realtime: (0, Vec::new()),
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
        let results = PinResults::new(names.len(), 5);
        for (i, core) in plan.iter().enumerate() {
            // What each thread's `pin()` reports (without pinning the test thread).
            let p = results.pinner(i, Some(*core));
            let rt = crate::engine::sched::SchedOutcome {
                thread: String::new(),
                ok: i != 1,
                why: if i == 1 {
                    "not permitted".into()
                } else {
                    String::new()
                },
            };
            p.tx.try_send((i, Some(i != 2), Some(rt))).unwrap();
        }
        let extra = vec![crate::engine::sched::SchedOutcome {
            thread: "libzmq (tid 9)".into(),
            ok: true,
            why: String::new(),
        }];
        let r = results.report(PinRequest::Auto, Ok(plan), &names, extra);
        assert_eq!(
            r.describe_realtime().unwrap(),
            "SCHED_FIFO 5: zmq_rx_a, osc_tx_0, osc_tx_1, libzmq (tid 9); NOT for zmq_rx_b: not permitted"
        );
        assert_eq!(r.to_json()["realtime"]["threads"][1]["ok"], false);
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
