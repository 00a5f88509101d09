//! Cost of the trend detector: `Tracker::trend()` at the sizes the daemon meets (a fresh run,
//! a full recent window, the memory cap after days) and `Tracker::push()` per tick. Prints
//! figures; asserts nothing. Run: `cargo bench -p leak-monitor --bench trend`.

use leak_monitor::detection::{DetectorConfig, Tracker};
use leak_monitor::resource::Unit;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const MB: f64 = 1024.0 * 1024.0;

/// A realistic hard case: a slow leak under a collector sawtooth and noise, at 1 Hz.
fn tracker(samples: usize) -> Tracker {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tracker = Tracker::new(DetectorConfig::for_unit(Unit::Bytes));
    for i in 0..samples {
        let t = i as f64;
        let saw = 30.0 * MB * ((t % 7.0) / 7.0);
        let value = 80.0 * MB + 0.3 * MB * t + saw + (rng.unit() - 0.5) * 4.0 * MB;
        tracker.push(t, (value / 4096.0).round() * 4096.0);
    }
    tracker
}

/// Time per call, the best of five rounds: the machine is shared, the minimum is the cost.
fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed() / iterations
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    println!("trend() per call, one tracker:");
    for samples in [30usize, 120, 512, 2_000, 200_000] {
        let t = tracker(samples);
        let cost = per_call(200, || {
            black_box(t.trend(black_box(Some(8.0e9))));
        });
        println!(
            "  {samples:>7} samples ({:>4} points kept): {cost:>10.1?}",
            t.len()
        );
    }

    let mut t = tracker(200_000);
    let mut rng = Rng(7);
    let mut clock = 200_000.0;
    let cost = per_call(100_000, || {
        clock += 1.0;
        let value = 500.0 * MB + 0.3 * MB * clock + rng.unit() * 4.0 * MB;
        black_box(t.push(clock, black_box(value)));
    });
    println!("push() per sample at the cap: {cost:.1?}");

    // The daemon's worst tick: 50 targets x 4 resources at the cap, one trend() each.
    let trackers: Vec<Tracker> = (0..200).map(|_| tracker(20_000)).collect();
    let tick = per_call(1, || {
        for tr in &trackers {
            black_box(tr.trend(None));
        }
    });
    println!("200 trackers at the cap, one trend() each: {tick:.1?}");
}
