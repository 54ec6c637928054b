//! The verifier (pure; no I/O).

use super::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

#[derive(Clone, Copy, Default)]
pub(super) struct CandSet {
    pub(super) n: usize,
    v: [u32; MAX_CANDS],
}

impl CandSet {
    /// Adds `s`; when full, keeps the candidates closest (circularly) to `reference`.
    fn push(&mut self, s: u32, reference: u32, w: i64) {
        if self.contains(s) {
            return;
        }
        if self.n < MAX_CANDS {
            self.v[self.n] = s;
            self.n += 1;
            return;
        }
        let dist = |x: u32| circ(i64::from(x) - i64::from(reference), w).abs();
        let (far, far_d) = self.v[..self.n]
            .iter()
            .enumerate()
            .map(|(i, &x)| (i, dist(x)))
            .fold((0, -1), |acc, x| if x.1 > acc.1 { x } else { acc });
        if dist(s) < far_d {
            self.v[far] = s;
        }
    }
    pub(super) fn contains(&self, s: u32) -> bool {
        self.v[..self.n].contains(&s)
    }
}

/// Signed circular distance in `(-w/2, w/2]`.
pub(super) fn circ(d: i64, w: i64) -> i64 {
    let r = d.rem_euclid(w);
    if r > w / 2 {
        r - w
    } else {
        r
    }
}

pub(super) struct Verifier {
    channels: Vec<u32>,
    wrap: u32,
    w: i64,
    f: i64,
    method: Method,
    layout: Layout,
    sample_addr: String,
    batch_prefix: String,
    clock: Option<Arc<BlockClock>>,
    /// Sink-frame absolute start index of the next expected row.
    expected: Option<i64>,
    /// Start index of the first row of the current epoch (phase).
    epoch_base: i64,
    /// Ring of row numbers seen, indexed by row number mod HISTORY_ROWS.
    seen: Vec<i64>,
    cands: Vec<CandSet>,
    counts: HashMap<u32, u32>,
    pub(super) report: SinkReport,
}

/// Outcome of a row's value check.
pub(super) struct RowCheck {
    s_mod: Option<u32>,
    torn: bool,
    bad: u64,
}

impl Verifier {
    pub(super) fn new(cfg: &SinkConfig) -> Self {
        let base = cfg.base_address.trim_end_matches('/');
        let latency = cfg
            .block_clock
            .as_ref()
            .and_then(|_| Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).ok());
        Verifier {
            channels: cfg.channels.clone(),
            wrap: cfg.wrap,
            w: i64::from(cfg.wrap.max(1)),
            f: i64::from(cfg.factor.max(1)),
            method: cfg.method,
            layout: cfg.layout,
            sample_addr: format!("{base}/sample"),
            batch_prefix: format!("{base}/batch/"),
            clock: cfg.block_clock.clone(),
            expected: None,
            epoch_base: 0,
            seen: vec![i64::MIN; HISTORY_ROWS],
            cands: vec![CandSet::default(); cfg.channels.len()],
            counts: HashMap::new(),
            report: SinkReport {
                latency,
                ..SinkReport::default()
            },
        }
    }

    /// Exact value the bridge emits for channel `ch` and the group starting at `s`.
    pub(super) fn group_value(&self, ch: u32, s: i64) -> f32 {
        if self.f == 1 {
            return pattern_value(self.wrap, ch, s);
        }
        match self.method {
            Method::Decimate => pattern_value(self.wrap, ch, s + self.f - 1),
            Method::Average => {
                // Same values as pattern_value(wrap, ch, s + i), without a division per sample.
                let chw = u64::from(ch) * self.w as u64;
                let mut jm = s.rem_euclid(self.w) as u64;
                let w = self.w as u64;
                let mut acc = (chw + jm) as f32;
                for _ in 1..self.f {
                    jm += 1;
                    if jm == w {
                        jm = 0;
                    }
                    acc += (chw + jm) as f32;
                }
                acc / self.f as f32
            }
        }
    }

    /// Group starts `s` (mod wrap) for which channel `ch` yields exactly `v`. Average mode can
    /// be ambiguous (rounding of large sums); if more than [`MAX_CANDS`] match, those closest
    /// to `hint` (else to the estimate) are kept.
    pub(super) fn candidates(&self, ch: u32, v: f32, hint: Option<u32>) -> CandSet {
        let mut out = CandSet::default();
        if !v.is_finite() {
            return out;
        }
        let (w, f) = (self.w, self.f);
        let chw = i64::from(ch) * w;
        let matches = |s: i64| self.group_value(ch, s).to_bits() == v.to_bits();
        if f == 1 || self.method == Method::Decimate {
            if !(0.0..VALUE_LIMIT as f32).contains(&v) || v.fract() != 0.0 {
                return out;
            }
            let u = v as i64;
            if u < chw || u >= chw + w {
                return out; // wrong channel
            }
            let s = (u - chw - (f - 1)).rem_euclid(w);
            if matches(s) {
                out.push(s as u32, 0, w);
            }
            return out;
        }
        // Average. Non-straddling groups (s ..= s+F-1 within one wrap period): the mean is
        // ≈ ch·wrap + s + (F−1)/2, the f32 sequential sum being off by at most ~F index units.
        let x = f64::from(v) - chw as f64 - (f - 1) as f64 / 2.0;
        let rad = f + 4;
        if x > -(rad as f64) - 2.0 && x < (w + rad) as f64 + 2.0 {
            let est = x.round() as i64;
            let reference = hint.unwrap_or(est.rem_euclid(w) as u32);
            for d in 0..=rad {
                for s in [est + d, est - d] {
                    if (0..=w - f).contains(&s) && matches(s) {
                        out.push(s as u32, reference, w);
                    }
                }
            }
        }
        // Straddling groups s = wrap − m (m in 1..F): the exact mean is
        // ch·wrap + (m·(wrap − F) + F(F−1)/2) / F, linear in m.
        if w > f {
            let m_est = (f as f64 * (f64::from(v) - chw as f64) - (f * (f - 1)) as f64 / 2.0)
                / (w - f) as f64;
            if m_est > -(f as f64) && m_est < 2.0 * f as f64 {
                let m0 = m_est.round() as i64;
                let rad_m = f * f / (w - f) + 3;
                for m in (m0 - rad_m).max(1)..=(m0 + rad_m).min(f - 1) {
                    if matches(w - m) {
                        out.push((w - m) as u32, hint.unwrap_or((w - m0) as u32), w);
                    }
                }
            }
        }
        out
    }

    /// Checks the values of one row; `get(i)` is the value at position i (< `n`); `raw`: the
    /// row's values as consecutive big-endian f32 words when the layout has them so (sample).
    fn check_row(&mut self, get: &impl Fn(usize) -> f32, raw: Option<&[u8]>, n: usize) -> RowCheck {
        // Fast path: exactly the expected row.
        let hint = self.expected.map(|e| e.rem_euclid(self.w));
        if let Some(em) = hint {
            // At F = 1 the expected value is `ch·wrap + em` (pattern_value with the modulo done
            // once per row, not per value: at 2048 ch × 30 kHz this loop is the sink's main
            // cost); other cases compute group_value per channel.
            let expected_row = if self.f == 1 {
                let (w, channels) = (self.w, &self.channels[..n]);
                let exp = |ch: u32| ((i64::from(ch) * w + em) as f32).to_bits();
                match raw {
                    // Sample layout: compare the big-endian words directly, without
                    // short-circuit so the loop vectorises (a mismatch is rare).
                    Some(args) if args.len() >= 4 * n => {
                        args.chunks_exact(4)
                            .zip(channels)
                            .fold(true, |ok, (b, &ch)| {
                                ok & (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == exp(ch))
                            })
                    }
                    _ => (0..n).all(|i| exp(channels[i]) == get(i).to_bits()),
                }
            } else {
                (0..n).all(|i| self.group_value(self.channels[i], em).to_bits() == get(i).to_bits())
            };
            if expected_row {
                return RowCheck {
                    s_mod: Some(em as u32),
                    torn: false,
                    bad: 0,
                };
            }
        }
        // Slow path: decode every value, take the group start most values agree on.
        self.counts.clear();
        for i in 0..n {
            let c = self.candidates(self.channels[i], get(i), hint.map(|h| h as u32));
            self.cands[i] = c;
            for &s in &c.v[..c.n] {
                *self.counts.entry(s).or_insert(0) += 1;
            }
        }
        let w = self.w;
        let dist = |s: u32| hint.map_or(0, |h| circ(i64::from(s) - h, w).abs());
        let best = self
            .counts
            .iter()
            .map(|(&s, &c)| (s, c))
            .max_by(|a, b| {
                a.1.cmp(&b.1)
                    .then(dist(b.0).cmp(&dist(a.0)))
                    .then(b.0.cmp(&a.0))
            })
            .map(|(s, _)| s);
        let Some(s) = best else {
            return RowCheck {
                s_mod: None,
                torn: false,
                bad: n as u64,
            };
        };
        // Judge each value by exact recomputation for `s` (candidate sets may be truncated).
        let mut torn = false;
        let mut bad = 0;
        for i in 0..n {
            if self.cands[i].n == 0 {
                bad += 1;
            } else if self.group_value(self.channels[i], i64::from(s)).to_bits() != get(i).to_bits()
            {
                torn = true;
            }
        }
        RowCheck {
            s_mod: Some(s),
            torn,
            bad,
        }
    }

    fn row_number(&self, abs: i64) -> i64 {
        (abs - self.epoch_base).div_euclid(self.f)
    }

    fn slot(&self, row: i64) -> usize {
        row.rem_euclid(HISTORY_ROWS as i64) as usize
    }

    fn start_epoch(&mut self, abs: i64) {
        self.epoch_base = abs;
        self.seen.fill(i64::MIN);
    }

    /// Records an in-order (or after-gap / after-restart) row at `abs`.
    fn accept_in_order(&mut self, abs: i64, ok: bool, now: Instant) {
        if ok {
            self.report.clean_rows += 1;
        }
        let row = self.row_number(abs);
        let slot = self.slot(row);
        self.seen[slot] = row;
        self.expected = Some(abs + self.f);
        self.record_latency(abs, now);
    }

    fn record_latency(&mut self, abs: i64, now: Instant) {
        let Some(clock) = &self.clock else { return };
        let last_mod = (abs + self.f - 1).rem_euclid(self.w);
        let Some(latest) = clock.latest_sample() else {
            return;
        };
        // The row's last input sample, in the simulator's absolute frame: the index ≡ last_mod
        // not after the newest recorded sample. Rows more than half a wrap behind are assumed
        // to belong to a block not recorded yet and are skipped.
        let back = latest.saturating_sub(last_mod).rem_euclid(self.w);
        if back > self.w / 2 {
            return;
        }
        if let Some(sent) = clock.lookup(latest.saturating_sub(back)) {
            let ns = now.saturating_duration_since(sent).as_nanos();
            if let Some(h) = &mut self.report.latency {
                h.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
            }
        }
    }

    fn process_row(
        &mut self,
        get: impl Fn(usize) -> f32,
        raw: Option<&[u8]>,
        n_values: usize,
        now: Instant,
    ) {
        self.report.rows += 1;
        let n = n_values.min(self.channels.len());
        let extra = n_values.abs_diff(self.channels.len()) as u64;
        let chk = self.check_row(&get, raw, n);
        self.report.bad_values += chk.bad + extra;
        let Some(s_mod) = chk.s_mod else {
            // Undecodable row: assume it occupies the expected slot.
            if let Some(e) = self.expected {
                self.accept_in_order(e, false, now);
            }
            return;
        };
        if chk.torn {
            self.report.torn_rows += 1;
        }
        let ok = !chk.torn && chk.bad == 0 && extra == 0;
        let Some(e) = self.expected else {
            let abs = i64::from(s_mod);
            self.start_epoch(abs);
            self.accept_in_order(abs, ok, now);
            return;
        };
        let d = circ(i64::from(s_mod) - e, self.w);
        let abs = e + d;
        let f = self.f;
        if d.rem_euclid(f) != 0 || (d < 0 && -d > HISTORY_ROWS as i64 * f) {
            self.report.discontinuities += 1;
            self.start_epoch(abs);
            self.accept_in_order(abs, ok, now);
        } else if d >= 0 {
            self.report.lost_rows += (d / f) as u64;
            self.accept_in_order(abs, ok, now);
        } else {
            let row = self.row_number(abs);
            let slot = self.slot(row);
            if self.seen[slot] == row {
                self.report.duplicated_rows += 1;
            } else {
                self.report.reordered_rows += 1;
                if abs >= self.epoch_base {
                    self.report.lost_rows = self.report.lost_rows.saturating_sub(1);
                }
                self.seen[slot] = row;
                self.record_latency(abs, now);
            }
        }
    }

    /// Handles one received datagram.
    pub(super) fn handle_datagram(&mut self, data: &[u8], truncated: bool, now: Instant) {
        let r = &mut self.report;
        r.datagrams += 1;
        r.bytes += data.len() as u64;
        r.first_at.get_or_insert(now);
        r.last_at = Some(now);
        if truncated {
            r.malformed += 1;
            return;
        }
        let Some(msg) = parse_osc_message(data) else {
            r.malformed += 1;
            return;
        };
        match self.layout {
            Layout::Sample if msg.address == self.sample_addr => {
                let n = msg.type_tags.len();
                if n == 0 || msg.type_tags.iter().any(|&t| t != b'f') {
                    self.report.malformed += 1;
                    return;
                }
                self.report.channels_seen = self.report.channels_seen.max(n);
                let args = msg.args;
                self.process_row(|c| be_f32(args, 4 * c), Some(args), n, now);
            }
            Layout::Batch if msg.address.starts_with(&self.batch_prefix) => {
                let Some((n, k)) = batch_shape(&msg, &self.batch_prefix) else {
                    self.report.malformed += 1;
                    return;
                };
                self.report.channels_seen = self.report.channels_seen.max(n);
                let args = msg.args;
                for r in 0..k {
                    self.process_row(|c| be_f32(args, 4 + 4 * (c * k + r)), None, n, now);
                }
            }
            Layout::Any => {
                self.report.any.handle(&msg, data.len(), now);
                self.report.rows = self.report.any.rows;
            }
            _ => self.report.wrong_address += 1,
        }
    }
}

/// Validates a batch message; returns (N channels, k rows).
pub(super) fn batch_shape(msg: &OscMessage<'_>, prefix: &str) -> Option<(usize, usize)> {
    let ks = msg.address.get(prefix.len()..)?;
    if ks.is_empty() || ks.len() > 9 || !ks.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let k: usize = ks.parse().ok()?;
    let (&first, rest) = msg.type_tags.split_first()?;
    if k == 0 || first != b'i' || rest.iter().any(|&t| t != b'f') {
        return None;
    }
    let n = i32::from_be_bytes(msg.args.get(..4)?.try_into().ok()?);
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    (n.checked_mul(k)? == rest.len()).then_some((n, k))
}
