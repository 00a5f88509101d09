//! Least-squares growth models (linear, quadratic, exponential with an offset, and a two-slope
//! "hinge") and the Bayesian information criterion that compares them.
//!
//! Times are shifted and scaled inside each fit so sums stay well conditioned whatever the
//! absolute values (seconds since start, bytes in the gigabytes).

/// A fitted growth curve, in the caller's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Curve {
    /// `a + b t`.
    Linear { a: f64, b: f64 },
    /// `c0 + c1 s + c2 s^2` with `s = (t - center) / scale`.
    Quadratic {
        c0: f64,
        c1: f64,
        c2: f64,
        center: f64,
        scale: f64,
    },
    /// `a + b e^{r (t - t_ref)}`, r > 0.
    Exponential { a: f64, b: f64, r: f64, t_ref: f64 },
}

impl Curve {
    pub fn value(&self, t: f64) -> f64 {
        match *self {
            Curve::Linear { a, b } => a + b * t,
            Curve::Quadratic {
                c0,
                c1,
                c2,
                center,
                scale,
            } => {
                let s = (t - center) / scale;
                c0 + c1 * s + c2 * s * s
            }
            Curve::Exponential { a, b, r, t_ref } => a + b * (r * (t - t_ref)).exp(),
        }
    }

    /// The slope of the curve at `t`, units per second.
    pub fn derivative(&self, t: f64) -> f64 {
        match *self {
            Curve::Linear { b, .. } => b,
            Curve::Quadratic {
                c1,
                c2,
                center,
                scale,
                ..
            } => (c1 + 2.0 * c2 * (t - center) / scale) / scale,
            Curve::Exponential { b, r, t_ref, .. } => b * r * (r * (t - t_ref)).exp(),
        }
    }

    /// Seconds after `from` at which the curve first reaches `level`, following the curve.
    /// None when it never does (flat, falling, or bending away).
    pub fn time_to_reach(&self, level: f64, from: f64) -> Option<f64> {
        if self.value(from) >= level {
            return Some(0.0);
        }
        let at = match *self {
            Curve::Linear { a, b } => (b > 0.0).then(|| (level - a) / b)?,
            Curve::Quadratic {
                c0,
                c1,
                c2,
                center,
                scale,
            } => {
                let s_from = (from - center) / scale;
                let s = smallest_root_after(c2, c1, c0 - level, s_from)?;
                center + s * scale
            }
            Curve::Exponential { a, b, r, t_ref } => {
                let ratio = (level - a) / b;
                (b > 0.0 && ratio > 0.0).then(|| t_ref + ratio.ln() / r)?
            }
        };
        (at.is_finite() && at >= from).then_some(at - from)
    }
}

/// Smallest root of `a x^2 + b x + c` that is >= `after`.
fn smallest_root_after(a: f64, b: f64, c: f64, after: f64) -> Option<f64> {
    if a.abs() < f64::EPSILON * (b.abs() + c.abs()).max(1.0) {
        let x = -c / b;
        return (b != 0.0 && x >= after).then_some(x);
    }
    let disc = b * b - 4.0 * a * c;
    if disc < 0.0 {
        return None;
    }
    let sq = disc.sqrt();
    let (r1, r2) = ((-b - sq) / (2.0 * a), (-b + sq) / (2.0 * a));
    let (lo, hi) = if r1 <= r2 { (r1, r2) } else { (r2, r1) };
    [lo, hi].into_iter().find(|&x| x >= after)
}

/// A curve and how well it fits: the residual sum of squares and its parameter count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    pub curve: Curve,
    pub rss: f64,
    pub params: usize,
}

impl Fit {
    /// Bayesian information criterion (lower is better). `variance_floor` keeps perfect fits of
    /// exact data (integer counts on a line) from scoring minus infinity.
    pub fn bic(&self, n: usize, variance_floor: f64) -> f64 {
        let n_f = n as f64;
        let variance = (self.rss / n_f).max(variance_floor).max(f64::MIN_POSITIVE);
        n_f * variance.ln() + self.params as f64 * n_f.ln()
    }
}

/// Centre and scale that map `t` into about [-1, 1].
fn normalizer(t: &[f64]) -> Option<(f64, f64)> {
    let first = *t.first()?;
    let last = *t.last()?;
    let scale = (last - first) / 2.0;
    (scale > 0.0).then_some(((first + last) / 2.0, scale))
}

/// Solves a small dense linear system by Gaussian elimination with partial pivoting.
fn solve<const N: usize>(mut m: [[f64; N]; N], mut v: [f64; N]) -> Option<[f64; N]> {
    for col in 0..N {
        let pivot = (col..N).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        v.swap(col, pivot);
        let pivot_row = m[col];
        for row in col + 1..N {
            let f = m[row][col] / pivot_row[col];
            for (cell, &p) in m[row].iter_mut().zip(&pivot_row).skip(col) {
                *cell -= f * p;
            }
            v[row] -= f * v[col];
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| m[row][k] * x[k]).sum();
        x[row] = (v[row] - tail) / m[row][row];
    }
    x.iter().all(|x| x.is_finite()).then_some(x)
}

/// Least squares of `y` on the basis functions `basis(i)`, returning coefficients and RSS.
fn least_squares<const N: usize>(
    y: &[f64],
    basis: impl Fn(usize) -> [f64; N],
) -> Option<([f64; N], f64)> {
    // Centre y so large offsets (gigabytes) do not eat the precision of the normal equations.
    let y_mean = y.iter().sum::<f64>() / y.len() as f64;
    let mut m = [[0.0; N]; N];
    let mut v = [0.0; N];
    for (i, &yi) in y.iter().enumerate() {
        let x = basis(i);
        for r in 0..N {
            for c in 0..N {
                m[r][c] += x[r] * x[c];
            }
            v[r] += x[r] * (yi - y_mean);
        }
    }
    let coef = solve(m, v)?;
    let rss = y
        .iter()
        .enumerate()
        .map(|(i, &yi)| {
            let x = basis(i);
            let fitted: f64 = (0..N).map(|k| coef[k] * x[k]).sum();
            (yi - y_mean - fitted).powi(2)
        })
        .sum();
    Some((coef, rss))
}

/// Adds the mean of y back to the constant term of a fit made on centred y.
fn mean(y: &[f64]) -> f64 {
    y.iter().sum::<f64>() / y.len() as f64
}

pub fn linear(t: &[f64], y: &[f64]) -> Option<Fit> {
    let (center, scale) = normalizer(t)?;
    let ([c0, c1], rss) = least_squares(y, |i| [1.0, (t[i] - center) / scale])?;
    let b = c1 / scale;
    let a = c0 + mean(y) - b * center;
    Some(Fit {
        curve: Curve::Linear { a, b },
        rss,
        params: 2,
    })
}

pub fn quadratic(t: &[f64], y: &[f64]) -> Option<Fit> {
    if t.len() < 4 {
        return None;
    }
    let (center, scale) = normalizer(t)?;
    let ([c0, c1, c2], rss) = least_squares(y, |i| {
        let s = (t[i] - center) / scale;
        [1.0, s, s * s]
    })?;
    Some(Fit {
        curve: Curve::Quadratic {
            c0: c0 + mean(y),
            c1,
            c2,
            center,
            scale,
        },
        rss,
        params: 3,
    })
}

/// `a + b e^{r (t - t_end)}` for a fixed rate `r`: linear in (a, b), solved in closed form in
/// one pass (this runs a few dozen times per fit).
fn exponential_at(t: &[f64], y: &[f64], r: f64) -> Option<Fit> {
    let t_ref = *t.last()?;
    let n = y.len() as f64;
    let y_mean = mean(y);
    // e^{r (t - t_end)} lies in (0, 1] for r > 0: no overflow whatever the rate.
    let (mut su, mut suu, mut suy, mut syy) = (0.0, 0.0, 0.0, 0.0);
    for (&ti, &yi) in t.iter().zip(y) {
        let u = (r * (ti - t_ref)).exp();
        let dy = yi - y_mean;
        su += u;
        suu += u * u;
        suy += u * dy;
        syy += dy * dy;
    }
    let u_mean = su / n;
    let sxx = suu - su * u_mean;
    if sxx <= f64::MIN_POSITIVE || !sxx.is_finite() {
        return None;
    }
    let b = suy / sxx;
    let a = y_mean - b * u_mean;
    let rss = (syy - b * suy).max(0.0);
    Some(Fit {
        curve: Curve::Exponential { a, b, r, t_ref },
        rss,
        params: 3,
    })
}

/// Growth rates searched, as e-foldings per observed span: from almost linear to a factor of
/// e^12 over the span.
const EXP_MIN_FOLDS: f64 = 0.25;
const EXP_MAX_FOLDS: f64 = 12.0;
const EXP_GRID: usize = 16;
const EXP_REFINE_STEPS: usize = 18;

/// Exponential growth over an offset, `a + b e^{r t}` with b, r > 0: a log-spaced grid over the
/// rate, then golden-section refinement around the best grid point.
pub fn exponential(t: &[f64], y: &[f64]) -> Option<Fit> {
    if t.len() < 4 {
        return None;
    }
    let span = t.last()? - t.first()?;
    if span <= 0.0 {
        return None;
    }
    let fold = |k: f64| {
        let ln_lo = EXP_MIN_FOLDS.ln();
        let ln_hi = EXP_MAX_FOLDS.ln();
        (ln_lo + (ln_hi - ln_lo) * k / (EXP_GRID - 1) as f64).exp() / span
    };
    let rss_at = |r: f64| {
        exponential_at(t, y, r)
            .filter(|f| matches!(f.curve, Curve::Exponential { b, .. } if b > 0.0))
            .map_or(f64::INFINITY, |f| f.rss)
    };
    let grid: Vec<(f64, f64)> = (0..EXP_GRID)
        .map(|k| {
            let r = fold(k as f64);
            (r, rss_at(r))
        })
        .collect();
    let best = (0..EXP_GRID).min_by(|&a, &b| grid[a].1.total_cmp(&grid[b].1))?;
    if !grid[best].1.is_finite() {
        return None;
    }
    let mut lo = grid[best.saturating_sub(1)].0;
    let mut hi = grid[(best + 1).min(EXP_GRID - 1)].0;
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - golden * (hi - lo);
    let mut x2 = lo + golden * (hi - lo);
    let (mut f1, mut f2) = (rss_at(x1), rss_at(x2));
    for _ in 0..EXP_REFINE_STEPS {
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - golden * (hi - lo);
            f1 = rss_at(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + golden * (hi - lo);
            f2 = rss_at(x2);
        }
    }
    let r = if f1 <= f2 { x1 } else { x2 };
    let candidate = exponential_at(t, y, r)?;
    let grid_best = exponential_at(t, y, grid[best].0)?;
    let fit = if candidate.rss <= grid_best.rss {
        candidate
    } else {
        grid_best
    };
    matches!(fit.curve, Curve::Exponential { b, .. } if b > 0.0).then_some(fit)
}

/// A continuous two-slope fit: slope `before` up to the knee, `after` from it on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hinge {
    pub knee: f64,
    pub before: f64,
    pub after: f64,
    pub rss: f64,
}

/// Knee positions tried, spread over the inner part of the series.
const HINGE_CANDIDATES: usize = 32;

/// The best continuous two-slope line, the knee searched among sample times between
/// `min_edge` of the span from either end. Answers "did the growth bend (stop)?".
pub fn hinge(t: &[f64], y: &[f64], min_edge: f64) -> Option<Hinge> {
    let n = t.len();
    if n < 6 {
        return None;
    }
    let (first, last) = (t[0], t[n - 1]);
    let span = last - first;
    let lo = first + min_edge * span;
    let hi = last - min_edge * span;
    let inner: Vec<usize> = (1..n - 1).filter(|&i| t[i] >= lo && t[i] <= hi).collect();
    if inner.is_empty() {
        return None;
    }
    let stride = inner.len().div_ceil(HINGE_CANDIDATES);
    let (_, scale) = normalizer(t)?;
    let mut best: Option<Hinge> = None;
    for &k in inner.iter().step_by(stride) {
        let knee = t[k];
        let fitted = least_squares(y, |i| {
            let d = (t[i] - knee) / scale;
            [1.0, d.min(0.0), d.max(0.0)]
        });
        let Some(([_, before, after], rss)) = fitted else {
            continue;
        };
        if best.is_none_or(|b| rss < b.rss) {
            best = Some(Hinge {
                knee,
                before: before / scale,
                after: after / scale,
                rss,
            });
        }
    }
    best
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn times(n: usize, dt: f64) -> Vec<f64> {
        (0..n).map(|i| i as f64 * dt).collect()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-9)
    }

    #[test]
    fn linear_recovers_a_line_at_large_offsets() {
        let t: Vec<f64> = times(50, 1.0).iter().map(|t| t + 1.0e6).collect();
        let y: Vec<f64> = t.iter().map(|t| 3.0e9 + 2.5e5 * (t - 1.0e6)).collect();
        let fit = linear(&t, &y).unwrap();
        assert!(close(fit.curve.derivative(0.0), 2.5e5, 1e-9));
        assert!(close(fit.curve.value(1.0e6 + 10.0), 3.0e9 + 2.5e6, 1e-9));
        assert!(fit.rss < 1.0);
    }

    #[test]
    fn quadratic_recovers_curvature_and_its_derivative() {
        let t = times(40, 1.0);
        let y: Vec<f64> = t.iter().map(|t| 10.0 + 0.5 * t + 0.25 * t * t).collect();
        let fit = quadratic(&t, &y).unwrap();
        assert!(fit.rss < 1e-12 * 1e6);
        assert!(close(fit.curve.derivative(39.0), 0.5 + 0.5 * 39.0, 1e-9));
        // 10 + 0.5 t + 0.25 t^2 = 1010 at t = -1 + sqrt(4001) = 62.2535.
        let eta = fit.curve.time_to_reach(1010.0, 39.0).unwrap();
        assert!(close(39.0 + eta, 62.253_463, 1e-6));
    }

    #[test]
    fn exponential_recovers_rate_and_offset() {
        let t = times(60, 1.0);
        let y: Vec<f64> = t.iter().map(|t| 20.0 + 1.0 * (t / 15.0).exp()).collect();
        let fit = exponential(&t, &y).unwrap();
        let Curve::Exponential { a, r, .. } = fit.curve else {
            panic!("not exponential: {fit:?}");
        };
        assert!(close(r, 1.0 / 15.0, 1e-3), "r = {r}");
        assert!(close(a, 20.0, 1e-2), "a = {a}");
        assert!(close(
            fit.curve.derivative(59.0),
            (59.0f64 / 15.0).exp() / 15.0,
            1e-3
        ));
        let eta = fit.curve.time_to_reach(20.0 + 1000.0, 59.0).unwrap();
        assert!(close(59.0 + eta, 15.0 * 1000f64.ln(), 1e-3));
    }

    #[test]
    fn exponential_beats_quadratic_on_exponential_data_and_vice_versa() {
        let t = times(60, 1.0);
        let e: Vec<f64> = t.iter().map(|t| 20.0 + (t / 12.0).exp()).collect();
        let q: Vec<f64> = t.iter().map(|t| 20.0 + 0.05 * t * t).collect();
        let floor = 1e-6;
        let bic = |f: Option<Fit>, y: &[f64]| f.unwrap().bic(y.len(), floor);
        assert!(bic(exponential(&t, &e), &e) < bic(quadratic(&t, &e), &e));
        assert!(bic(quadratic(&t, &q), &q) < bic(exponential(&t, &q), &q));
        assert!(bic(quadratic(&t, &q), &q) < bic(linear(&t, &q), &q));
    }

    #[test]
    fn hinge_finds_where_growth_stops() {
        let t = times(40, 1.0);
        let y: Vec<f64> = t.iter().map(|t| 5.0 + 2.0 * t.min(15.0)).collect();
        let h = hinge(&t, &y, 0.1).unwrap();
        assert_eq!(h.knee, 15.0);
        assert!(close(h.before, 2.0, 1e-9));
        assert!(h.after.abs() < 1e-9);
    }

    #[test]
    fn time_to_reach_is_none_when_the_curve_never_gets_there() {
        let flat = Curve::Linear { a: 5.0, b: 0.0 };
        assert_eq!(flat.time_to_reach(10.0, 0.0), None);
        let falling = Curve::Linear { a: 5.0, b: -1.0 };
        assert_eq!(falling.time_to_reach(10.0, 0.0), None);
        let rising = Curve::Linear { a: 5.0, b: 1.0 };
        assert_eq!(rising.time_to_reach(10.0, 2.0), Some(3.0));
        assert_eq!(rising.time_to_reach(6.0, 2.0), Some(0.0));
    }

    #[test]
    fn bic_prefers_the_simpler_model_on_exact_lines() {
        let t = times(30, 1.0);
        let y: Vec<f64> = t.iter().map(|t| (20.0 * t).round()).collect();
        let lin = linear(&t, &y).unwrap().bic(30, 1.0 / 12.0);
        let quad = quadratic(&t, &y).unwrap().bic(30, 1.0 / 12.0);
        assert!(lin < quad);
    }
}
