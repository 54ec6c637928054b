//! Extras of outputs configured under `outputs`: TTL events (`{base}/ttl`), spikes
//! (`{base}/spike`), the once-a-second status message (`{base}/status`) and layout notices
//! (`{base}/notice`).

use super::{Addr, OutputPipeline, Transmit};
use crate::frame::{EventKind, Frame};
use std::time::{Duration, Instant};

impl OutputPipeline {
    pub(super) fn send_events(&mut self, f: &Frame, tx: &mut dyn Transmit) {
        for e in &f.events {
            match e.kind {
                EventKind::Ttl if self.fmt.events => {
                    let ints = [
                        e.line as i32,
                        e.state as i32,
                        (e.sample_num >> 32) as i32,
                        e.sample_num as i32,
                        (e.word >> 32) as i32,
                        e.word as i32,
                    ];
                    self.scratch.clear();
                    self.put_message(tx, Addr::Ttl, &ints, &[], 0, false, 1);
                    self.counters.ttl_sent += 1;
                }
                EventKind::Spike if self.fmt.spikes => {
                    let name_end = (e.name_off + e.name_len) as usize;
                    let name = f
                        .event_text
                        .get(e.name_off as usize..name_end)
                        .unwrap_or(b"");
                    self.scratch.clear();
                    if self.fmt.spike_waveform {
                        let w_end = (e.wave_off + e.wave_len) as usize;
                        if let Some(w) = f.waveforms.get(e.wave_off as usize..w_end) {
                            self.scratch.extend_from_slice(w);
                        }
                    }
                    let ints = [
                        e.sorted_id,
                        (e.sample_num >> 32) as i32,
                        e.sample_num as i32,
                    ];
                    let nf = self.scratch.len();
                    self.put_message(tx, Addr::Spike, &ints, name, nf, false, 1);
                    self.counters.spikes_sent += 1;
                }
                _ => {}
            }
        }
    }

    pub(super) fn send_notice(&mut self, f: &Frame, tx: &mut dyn Transmit) {
        // {base}/notice ,s i f: stream name, channel count, sample rate.
        let ints = [self.n as i32];
        self.scratch.clear();
        self.scratch.push(f.sample_rate as f32);
        let stream = std::mem::take(&mut self.stream);
        self.put_message(tx, Addr::Notice, &ints, stream.as_bytes(), 1, false, 1);
        self.stream = stream;
        self.counters.notices_sent += 1;
    }

    pub(super) fn status_due(&mut self, now: Instant, tx: &mut dyn Transmit) {
        match self.next_status {
            None => self.next_status = Some(now + Duration::from_secs(1)),
            Some(t) if now >= t => {
                self.next_status = Some(now + Duration::from_secs(1));
                let s = tx.status();
                let c = |v: u64| (v & 0x7fff_ffff) as i32;
                let ints = [
                    c(s.received),
                    c(s.sent),
                    c(s.dropped_policy),
                    c(s.upstream_gaps),
                    c(s.malformed),
                    c(s.incomplete),
                    c(s.channels),
                ];
                self.scratch.clear();
                self.scratch.push(s.rate);
                self.put_message(tx, Addr::Status, &ints, &[], 1, false, 1);
                self.counters.status_sent += 1;
            }
            Some(_) => {}
        }
    }
}
