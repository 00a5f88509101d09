//! Spike detection on the per-tick path: a step far above the series' usual step, judged on the
//! median and MAD of the last steps' rates so steady growth and noise do not trigger it.

use super::stats::robust_scale_in_place;
use super::Spike;
use std::collections::VecDeque;

/// Steps remembered to learn what "usual" is.
const WINDOW: usize = 60;
/// Steps needed before anything is called unusual.
const MIN_HISTORY: usize = 8;
/// A spike is also at least this share of the usual rate above it, so the jitter of a steady,
/// noise-free growth (19, 21, 20 fds per tick) is not one.
const RELATIVE_MARGIN: f64 = 0.5;

/// Remembers recent step rates; allocation-free after construction.
#[derive(Clone, Debug)]
pub struct SpikeDetector {
    rates: VecDeque<f64>,
    scratch: Vec<f64>,
    sigmas: f64,
    resolution: f64,
}

impl SpikeDetector {
    pub fn new(sigmas: f64, resolution: f64) -> SpikeDetector {
        SpikeDetector {
            rates: VecDeque::with_capacity(WINDOW),
            scratch: Vec::with_capacity(WINDOW),
            sigmas,
            resolution,
        }
    }

    /// Takes the step from the previous sample to this one (`dt` > 0 seconds, `dv` units) that
    /// ended at `at`, and says whether it was a spike.
    pub fn observe(&mut self, at: f64, dt: f64, dv: f64) -> Option<Spike> {
        let rate = dv / dt;
        let spike = self
            .is_spike(rate, dt, dv)
            .then_some(Spike { at, amount: dv });
        if self.rates.len() == WINDOW {
            self.rates.pop_front();
        }
        self.rates.push_back(rate);
        spike
    }

    fn is_spike(&mut self, rate: f64, dt: f64, dv: f64) -> bool {
        if self.rates.len() < MIN_HISTORY || dv <= 0.0 || dv < self.resolution {
            return false;
        }
        let (front, back) = self.rates.as_slices();
        self.scratch.clear();
        self.scratch.extend_from_slice(front);
        self.scratch.extend_from_slice(back);
        let Some(usual) = robust_scale_in_place(&mut self.scratch) else {
            return false;
        };
        let margin = (self.sigmas * usual.sigma)
            .max(self.resolution / dt)
            .max(RELATIVE_MARGIN * usual.median.abs());
        rate > usual.median && rate >= usual.median + margin
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn feed(d: &mut SpikeDetector, steps: &[f64]) -> Vec<Option<Spike>> {
        steps
            .iter()
            .enumerate()
            .map(|(i, &dv)| d.observe(i as f64, 1.0, dv))
            .collect()
    }

    #[test]
    fn a_jump_far_above_the_usual_step_is_a_spike() {
        let mut d = SpikeDetector::new(6.0, 4096.0);
        let mut steps: Vec<f64> = (0..20)
            .map(|i| 1.0e6 + if i % 2 == 0 { 1.0e5 } else { -1.0e5 })
            .collect();
        steps.push(5.0e6);
        let out = feed(&mut d, &steps);
        assert!(out[..20].iter().all(Option::is_none));
        assert_eq!(
            out[20],
            Some(Spike {
                at: 20.0,
                amount: 5.0e6
            })
        );
    }

    #[test]
    fn steady_integer_growth_with_jitter_is_not_a_spike() {
        let mut d = SpikeDetector::new(6.0, 1.0);
        let steps: Vec<f64> = (0..40).map(|i| f64::from(19 + i % 3)).collect();
        assert!(feed(&mut d, &steps).iter().all(Option::is_none));
    }

    #[test]
    fn one_fd_on_a_flat_count_is_a_spike_and_noise_is_not() {
        let mut d = SpikeDetector::new(6.0, 1.0);
        let mut steps = vec![0.0; 15];
        steps.push(1.0);
        let out = feed(&mut d, &steps);
        assert!(out[15].is_some());
        let mut d = SpikeDetector::new(6.0, 1.0);
        let noisy: Vec<f64> = (0..40).map(|i| f64::from(i % 5) - 2.0).collect();
        assert!(feed(&mut d, &noisy).iter().all(Option::is_none));
    }

    #[test]
    fn nothing_is_a_spike_before_the_usual_step_is_known() {
        let mut d = SpikeDetector::new(6.0, 0.0);
        let out = feed(&mut d, &[0.0, 0.0, 100.0]);
        assert!(out.iter().all(Option::is_none));
    }
}
