//! Arithmetic of the results: the expected-rows rule, medians, the CPU ratio against the
//! baselines and the least-squares scaling fit.

/// Rows the sink should receive: every sample the simulator published, from the first one
/// (no block is excused, not even the one the bridge spends learning the channel set), over
/// the downsampling factor (a trailing partial group is never sent, hence the floor).
pub fn rows_expected(samples_published: u64, factor: u32) -> u64 {
    samples_published / u64::from(factor.max(1))
}

/// `n / d`, NaN when `d` is not a positive finite number or `n` is not finite.
pub fn ratio(n: f64, d: f64) -> f64 {
    if n.is_finite() && d.is_finite() && d > 0.0 {
        n / d
    } else {
        f64::NAN
    }
}

/// Median of the finite values (mean of the middle two for an even count); NaN if none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `bridge CPU / (bare ZeroMQ drain CPU + raw UDP baseline CPU)`: how much the bridge costs
/// over the least any program must spend receiving the same stream and sending the same
/// datagrams.
pub fn cpu_ratio(bridge: f64, drain: f64, udp: f64) -> f64 {
    ratio(bridge, drain + udp)
}

/// A least-squares line `y = a + b·x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    /// Intercept.
    pub a: f64,
    /// Slope.
    pub b: f64,
    /// Coefficient of determination (1 when every point lies on the line).
    pub r2: f64,
    /// Points used.
    pub n: usize,
}

impl LinearFit {
    /// Least squares over the finite points; `None` with fewer than two distinct x.
    pub fn fit(points: &[(f64, f64)]) -> Option<LinearFit> {
        let p: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let n = p.len() as f64;
        if p.len() < 2 {
            return None;
        }
        let mx = p.iter().map(|q| q.0).sum::<f64>() / n;
        let my = p.iter().map(|q| q.1).sum::<f64>() / n;
        let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
        let sxy: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
        let syy: f64 = p.iter().map(|q| (q.1 - my).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let b = sxy / sxx;
        let a = my - b * mx;
        let sse: f64 = p.iter().map(|q| (q.1 - a - b * q.0).powi(2)).sum();
        let r2 = if syy > 0.0 { 1.0 - sse / syy } else { 1.0 };
        Some(LinearFit {
            a,
            b,
            r2,
            n: p.len(),
        })
    }

    /// The line at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.a + self.b * x
    }

    /// The x at which the line reaches `y` (e.g. 100 % of one core); `None` if it never does
    /// (a flat or falling line).
    pub fn x_at(&self, y: f64) -> Option<f64> {
        (self.b > 0.0).then(|| (y - self.a) / self.b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_rows_count_from_the_first_sample() {
        // 10 blocks of 696 samples: every row counts, the learning block included.
        assert_eq!(rows_expected(6960, 1), 6960);
        assert_eq!(rows_expected(6960, 30), 232);
        assert_eq!(rows_expected(6961, 30), 232);
        assert_eq!(rows_expected(29, 30), 0);
        assert_eq!(rows_expected(5, 0), 5);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 7.0, 1.0]), 4.0);
        assert!(median(&[f64::NAN]).is_nan());
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert!(ratio(1.0, 0.0).is_nan());
        assert!(ratio(f64::NAN, 1.0).is_nan());
        assert_eq!(cpu_ratio(9.0, 2.0, 1.0), 3.0);
        assert!(cpu_ratio(9.0, f64::NAN, 1.0).is_nan());
    }

    #[test]
    fn least_squares() {
        // Exact line 2 + 0.04·x.
        let pts: Vec<(f64, f64)> = [16.0, 64.0, 256.0, 1024.0]
            .iter()
            .map(|&x| (x, 2.0 + 0.04 * x))
            .collect();
        let f = LinearFit::fit(&pts).unwrap();
        assert!((f.a - 2.0).abs() < 1e-9 && (f.b - 0.04).abs() < 1e-12);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert_eq!(f.n, 4);
        assert!((f.x_at(100.0).unwrap() - 2450.0).abs() < 1e-6);
        assert!((f.at(100.0) - 6.0).abs() < 1e-9);
        // Noisy points: y = 1 + x with residuals ±1 at x = 0, 1, 2, 3.
        let f = LinearFit::fit(&[(0.0, 2.0), (1.0, 1.0), (2.0, 4.0), (3.0, 3.0)]).unwrap();
        assert!(
            (f.b - 0.6).abs() < 1e-12 && (f.a - 1.6).abs() < 1e-12,
            "{f:?}"
        );
        assert!(f.r2 > 0.0 && f.r2 < 1.0);
        // Degenerate input.
        assert!(LinearFit::fit(&[(1.0, 1.0)]).is_none());
        assert!(LinearFit::fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
        assert!(LinearFit::fit(&[(1.0, 1.0), (f64::NAN, 2.0)]).is_none());
        let flat = LinearFit::fit(&[(1.0, 5.0), (2.0, 5.0)]).unwrap();
        assert_eq!(flat.x_at(100.0), None);
    }
}
