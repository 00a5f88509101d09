//! Robust statistics on small samples: median, MAD, quantiles, the Mann-Kendall trend test (with
//! tie correction, so integer series such as fd counts work) and the Theil-Sen slope.
//!
//! Inputs are finite `f64`s (the tracker rejects anything else). Functions that need order
//! statistics copy into a scratch buffer rather than reorder the caller's data.

/// `1 / Phi^-1(3/4)`: turns a median absolute deviation into a standard deviation for normal data.
pub const MAD_TO_SIGMA: f64 = 1.482_6;

/// Theil-Sen looks at every pair of points; above this many points it works on an evenly
/// thinned subset so the cost stays bounded (128 points = 8,128 pairs).
const THEIL_SEN_MAX_POINTS: usize = 128;

/// Median of `values`, reordering them. None when empty.
pub fn median_in_place(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (below, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return Some(upper);
    }
    // The lower middle is the largest element of the left part.
    let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

/// Median of `values` (copied). None when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    median_in_place(&mut values.to_vec())
}

/// Centre and spread of a sample that ignore outliers: the median and the MAD scaled to a
/// standard deviation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RobustScale {
    pub median: f64,
    /// `MAD_TO_SIGMA * median(|x - median|)`; 0 when more than half the values are equal.
    pub sigma: f64,
}

/// Median and scaled MAD of `values`, computed in place: `values` is overwritten.
pub fn robust_scale_in_place(values: &mut [f64]) -> Option<RobustScale> {
    let median = median_in_place(values)?;
    for x in values.iter_mut() {
        *x = (*x - median).abs();
    }
    let mad = median_in_place(values)?;
    Some(RobustScale {
        median,
        sigma: MAD_TO_SIGMA * mad,
    })
}

/// Median and scaled MAD of `values`.
pub fn robust_scale(values: &[f64]) -> Option<RobustScale> {
    robust_scale_in_place(&mut values.to_vec())
}

/// The `q` quantile (0..=1) of `values` by linear interpolation between order statistics.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Complementary error function. Chebyshev-fitted rational approximation with a fractional
/// error below 1.2e-7 everywhere, so tiny tail probabilities keep their order of magnitude.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Upper tail of the standard normal distribution, `P(Z > z)`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The Mann-Kendall test for a monotonic trend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannKendall {
    /// Number of increasing pairs minus decreasing pairs.
    pub s: f64,
    /// Variance of `s` under "no trend", corrected for ties.
    pub variance: f64,
    /// Continuity-corrected normal score; 0 when there is no information.
    pub z: f64,
}

impl MannKendall {
    /// The test on fewer than three points, or on a constant series: no evidence either way.
    pub const NONE: MannKendall = MannKendall {
        s: 0.0,
        variance: 0.0,
        z: 0.0,
    };

    /// One-sided p-value for "the series increases". 0.5 means no evidence.
    pub fn p_increasing(&self) -> f64 {
        normal_sf(self.z)
    }

    /// The test with the variance of `s` multiplied by `factor` (>= 1), for serially correlated
    /// data: see `variance_inflation`.
    pub fn inflated(self, factor: f64) -> MannKendall {
        let variance = self.variance * factor.max(1.0);
        if variance <= 0.0 {
            return MannKendall::NONE;
        }
        let continuity = if self.s > 0.0 {
            1.0
        } else if self.s < 0.0 {
            -1.0
        } else {
            self.s
        };
        let z = (self.s - continuity) / variance.sqrt();
        MannKendall {
            variance,
            z,
            ..self
        }
    }
}

/// Lag-1 autocorrelation of `residuals` (about their mean); 0 when undefined.
pub fn lag1_autocorrelation(residuals: &[f64]) -> f64 {
    let n = residuals.len();
    if n < 3 {
        return 0.0;
    }
    let mean = residuals.iter().sum::<f64>() / n as f64;
    let denom: f64 = residuals.iter().map(|r| (r - mean).powi(2)).sum();
    if denom <= 0.0 {
        return 0.0;
    }
    let num: f64 = residuals
        .windows(2)
        .map(|w| (w[0] - mean) * (w[1] - mean))
        .sum();
    num / denom
}

/// The best non-decreasing least-squares fit of `values` (isotonic regression, by pooling
/// adjacent violators). O(n).
pub fn isotonic_increasing(values: &[f64]) -> Vec<f64> {
    // Blocks of pooled neighbours: (sum, count); each block's mean exceeds the previous one's.
    let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(values.len());
    for &v in values {
        let mut block = (v, 1usize);
        while let Some(&(sum, count)) = blocks.last() {
            if sum / count as f64 <= block.0 / block.1 as f64 {
                break;
            }
            block = (block.0 + sum, block.1 + count);
            blocks.pop();
        }
        blocks.push(block);
    }
    blocks
        .into_iter()
        .flat_map(|(sum, count)| std::iter::repeat_n(sum / count as f64, count))
        .collect()
}

/// Lag-1 autocorrelation of the noise around the best monotone (non-decreasing) trend. Under
/// "it grows", whatever the shape (line, curve, steps, bursts), this is the noise's own
/// correlation; a level that wanders up and down keeps its swings in the residuals.
pub fn noise_autocorrelation(values: &[f64]) -> f64 {
    let fit = isotonic_increasing(values);
    let residuals: Vec<f64> = values.iter().zip(&fit).map(|(v, f)| v - f).collect();
    lag1_autocorrelation(&residuals)
}

/// Highest lag-1 autocorrelation believed: above it the series is a trend, not noise.
const MAX_AUTOCORRELATION: f64 = 0.95;

/// How much serial correlation inflates the variance of a trend statistic over `n` points,
/// `n / n_eff = 1 + 2 sum_{k=1}^{n-1} (1 - k/n) rho^k` for AR(1) noise of lag-1 correlation
/// `rho` (the effective-sample-size correction of Yue and Wang). 1 for uncorrelated noise;
/// negative correlation is not credited.
pub fn variance_inflation(rho: f64, n: usize) -> f64 {
    let rho = rho.clamp(0.0, MAX_AUTOCORRELATION);
    let n_f = n as f64;
    let mut sum = 0.0;
    let mut power = 1.0;
    for k in 1..n {
        power *= rho;
        if power < 1e-9 {
            break;
        }
        sum += (1.0 - k as f64 / n_f) * power;
    }
    1.0 + 2.0 * sum
}

/// Mann-Kendall on a series in time order. O(n^2): callers keep `n` to a few hundred.
pub fn mann_kendall(values: &[f64]) -> MannKendall {
    let n = values.len();
    if n < 3 {
        return MannKendall::NONE;
    }
    let mut s: i64 = 0;
    for (i, &a) in values.iter().enumerate() {
        for &b in &values[i + 1..] {
            s += match b.total_cmp(&a) {
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
            };
        }
    }
    let term = |k: f64| k * (k - 1.0) * (2.0 * k + 5.0);
    let mut variance = term(n as f64);
    // Tie correction: every group of equal values removes its own share of the variance.
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && sorted[j] == sorted[i] {
            j += 1;
        }
        let group = (j - i) as f64;
        if group > 1.0 {
            variance -= term(group);
        }
        i = j;
    }
    variance /= 18.0;
    let s = s as f64;
    if variance <= 0.0 {
        return MannKendall::NONE;
    }
    let sd = variance.sqrt();
    let z = if s > 0.0 {
        (s - 1.0) / sd
    } else if s < 0.0 {
        (s + 1.0) / sd
    } else {
        0.0
    };
    MannKendall { s, variance, z }
}

/// A straight line `y = intercept + slope * t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    pub slope: f64,
    pub intercept: f64,
}

/// Theil-Sen estimator: the median of the pairwise slopes, and the median intercept. Ignores
/// up to ~29% of wild points. None with fewer than two distinct times.
pub fn theil_sen(t: &[f64], y: &[f64]) -> Option<Line> {
    let n = t.len().min(y.len());
    if n < 2 {
        return None;
    }
    // Evenly thinned indices when the series is long: cost O(THEIL_SEN_MAX_POINTS^2).
    let stride = n.div_ceil(THEIL_SEN_MAX_POINTS);
    let idx: Vec<usize> = (0..n).step_by(stride).collect();
    let mut slopes = Vec::with_capacity(idx.len() * (idx.len() - 1) / 2);
    for (k, &i) in idx.iter().enumerate() {
        for &j in &idx[k + 1..] {
            let dt = t[j] - t[i];
            if dt > 0.0 {
                slopes.push((y[j] - y[i]) / dt);
            }
        }
    }
    let slope = median_in_place(&mut slopes)?;
    let mut residuals: Vec<f64> = idx.iter().map(|&i| y[i] - slope * t[i]).collect();
    let intercept = median_in_place(&mut residuals)?;
    Some(Line { slope, intercept })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn median_handles_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn robust_scale_ignores_an_outlier() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 1000.0];
        let scale = robust_scale(&values).unwrap();
        assert_eq!(scale.median, 3.5);
        assert!(close(scale.sigma, MAD_TO_SIGMA * 1.5, 1e-9));
    }

    #[test]
    fn quantile_interpolates() {
        let values = [0.0, 10.0, 20.0, 30.0, 40.0];
        assert_eq!(quantile(&values, 0.5), Some(20.0));
        assert_eq!(quantile(&values, 0.125), Some(5.0));
        assert_eq!(quantile(&values, 1.0), Some(40.0));
    }

    #[test]
    fn normal_tail_matches_known_values() {
        assert!(close(normal_sf(0.0), 0.5, 1e-7));
        assert!(close(normal_sf(1.959_964), 0.025, 1e-6));
        assert!(close(normal_sf(-1.644_854), 0.95, 1e-6));
        // Relative accuracy in the far tail: P(Z > 6) = 9.8659e-10.
        assert!(close(normal_sf(6.0) / 9.865_876e-10, 1.0, 1e-5));
    }

    #[test]
    fn mann_kendall_of_a_monotone_series_is_significant() {
        let values: Vec<f64> = (0..10).map(f64::from).collect();
        let mk = mann_kendall(&values);
        assert_eq!(mk.s, 45.0);
        // n(n-1)(2n+5)/18 = 10*9*25/18 = 125.
        assert!(close(mk.variance, 125.0, 1e-9));
        assert!(close(mk.z, 44.0 / 125f64.sqrt(), 1e-9));
        assert!(mk.p_increasing() < 1e-4);
        let down: Vec<f64> = values.iter().rev().copied().collect();
        assert!(mann_kendall(&down).p_increasing() > 0.9999);
    }

    #[test]
    fn mann_kendall_corrects_for_ties() {
        // A staircase of integer counts: many ties.
        let values = [5.0, 5.0, 5.0, 6.0, 6.0, 6.0, 7.0, 7.0, 7.0];
        let mk = mann_kendall(&values);
        assert_eq!(mk.s, 27.0);
        // (9*8*23 - 3 * 3*2*11) / 18 = (1656 - 198) / 18 = 81.
        assert!(close(mk.variance, 81.0, 1e-9));
        assert!(mk.p_increasing() < 0.01);
    }

    #[test]
    fn mann_kendall_without_information_is_neutral() {
        assert_eq!(mann_kendall(&[1.0, 2.0]), MannKendall::NONE);
        let flat = mann_kendall(&[4.0; 20]);
        assert_eq!(flat.z, 0.0);
        assert!(close(flat.p_increasing(), 0.5, 1e-7));
    }

    #[test]
    fn autocorrelation_inflates_the_trend_variance() {
        let alternating: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(lag1_autocorrelation(&alternating) < -0.9);
        assert_eq!(variance_inflation(-0.9, 20), 1.0);
        assert_eq!(variance_inflation(0.0, 20), 1.0);
        // AR(1) with rho = 0.5 over many points: (1 + rho) / (1 - rho) = 3, less the finite-n term.
        let f = variance_inflation(0.5, 10_000);
        assert!(close(f, 3.0, 1e-3), "{f}");
        let smooth: Vec<f64> = (0..40).map(|i| (f64::from(i) / 6.0).sin()).collect();
        assert!(lag1_autocorrelation(&smooth) > 0.9);
        let mk = mann_kendall(&(0..30).map(f64::from).collect::<Vec<_>>());
        let weaker = mk.inflated(4.0);
        assert!(close(weaker.z, mk.z / 2.0, 1e-9));
        assert!(weaker.p_increasing() > mk.p_increasing());
    }

    #[test]
    fn isotonic_fit_pools_violators() {
        assert_eq!(
            isotonic_increasing(&[1.0, 3.0, 2.0, 4.0]),
            [1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(isotonic_increasing(&[5.0, 4.0, 3.0]), [4.0, 4.0, 4.0]);
        assert_eq!(isotonic_increasing(&[]), Vec::<f64>::new());
        // Bursts of growth with pauses are monotone: nothing left but the noise.
        let bursts: Vec<f64> = (0..60)
            .map(|i| f64::from((i % 20).min(10) + 10 * (i / 20)))
            .collect();
        assert_eq!(isotonic_increasing(&bursts), bursts);
        // A slow wave is not: its down-swings stay in the residuals, strongly correlated.
        let wave: Vec<f64> = (0..80).map(|i| (f64::from(i) / 8.0).sin()).collect();
        assert!(noise_autocorrelation(&wave) > 0.8);
    }

    #[test]
    fn theil_sen_ignores_outliers() {
        let t: Vec<f64> = (0..20).map(f64::from).collect();
        let mut y: Vec<f64> = t.iter().map(|t| 3.0 + 2.0 * t).collect();
        y[5] = 500.0;
        y[12] = -400.0;
        let line = theil_sen(&t, &y).unwrap();
        assert!(close(line.slope, 2.0, 1e-9));
        assert!(close(line.intercept, 3.0, 1e-9));
    }

    #[test]
    fn theil_sen_thins_long_series_without_losing_the_slope() {
        let t: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.5).collect();
        let y: Vec<f64> = t.iter().map(|t| -1.5 * t + 7.0).collect();
        let line = theil_sen(&t, &y).unwrap();
        assert!(close(line.slope, -1.5, 1e-9));
        assert!(theil_sen(&[1.0], &[1.0]).is_none());
    }
}
