//! The detector's error rates on generated series (deterministic: seeded noise, no clock):
//! how often each kind of decoy is ever called a leak while it is watched (checked every
//! `CHECK_EVERY` seconds, as a daemon would see it), how often it passes every gate but time
//! (`early_leak`: the engine then calls it a leak only if attribution names a source that does
//! not give back), and the time to verdict of leaks from 1 MB/s down to 1 KB/s under noise.
//! Prints figures; asserts nothing.
//!
//! Run: `cargo bench -p leak-monitor --bench verdicts` (`-- --seeds N`, default 1000 decoy
//! series per kind and N/10 per leak rate).

use leak_monitor::detection::{DetectorConfig, Tracker, Verdict};
use leak_monitor::resource::Unit;
use std::time::Instant;

const MB: f64 = 1024.0 * 1024.0;
const KB: f64 = 1024.0;
/// How often a watched series is judged.
const CHECK_EVERY: usize = 2;

/// xorshift64*: deterministic noise.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pm(&mut self, a: f64) -> f64 {
        (2.0 * self.unit() - 1.0) * a
    }

    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

fn pages(bytes: f64) -> f64 {
    (bytes / 4096.0).round() * 4096.0
}

type Series = Box<dyn FnMut(f64) -> f64>;

/// A decoy: growth that is not a leak, with its parameters drawn per seed.
struct Decoy {
    name: &'static str,
    unit: Unit,
    seconds: usize,
    make: fn(&mut Rng) -> Series,
}

const DECOYS: &[Decoy] = &[
    Decoy {
        name: "warm-up (imports, 1-6 s), then flat",
        unit: Unit::Bytes,
        seconds: 180,
        make: |rng| {
            let (base, rise, until) = (
                rng.between(10.0, 40.0) * MB,
                rng.between(10.0, 60.0) * MB,
                rng.between(1.0, 6.0),
            );
            let mut noise = Rng::new(rng.0);
            Box::new(move |t| pages(base + rise * (t / until).min(1.0) + noise.pm(200.0 * KB)))
        },
    },
    Decoy {
        name: "bounded cache filling at 0.5-3 MB/s for 5-30 s",
        unit: Unit::Bytes,
        seconds: 180,
        make: |rng| {
            let (rate, fill) = (rng.between(0.5, 3.0) * MB, rng.between(5.0, 30.0));
            let mut noise = Rng::new(rng.0);
            Box::new(move |t| pages(20.0 * MB + rate * t.min(fill) + noise.pm(300.0 * KB)))
        },
    },
    Decoy {
        name: "cache filling ever slower (1 - e^-t/tau, tau 3-20 s)",
        unit: Unit::Bytes,
        seconds: 180,
        make: |rng| {
            let (size, tau) = (rng.between(10.0, 80.0) * MB, rng.between(3.0, 20.0));
            let mut noise = Rng::new(rng.0);
            Box::new(move |t| {
                pages(20.0 * MB + size * (1.0 - (-t / tau).exp()) + noise.pm(300.0 * KB))
            })
        },
    },
    Decoy {
        name: "GC sawtooth, period 4-10 s, flat floor",
        unit: Unit::Bytes,
        seconds: 180,
        make: |rng| {
            let (period, amplitude) = (rng.between(4.0, 10.0).round(), rng.between(5.0, 40.0) * MB);
            let mut noise = Rng::new(rng.0);
            Box::new(move |t| {
                let phase = (t % period) / period;
                pages(50.0 * MB + amplitude * phase + noise.pm(500.0 * KB))
            })
        },
    },
    Decoy {
        name: "one step of 10-80 MB at 5-60 s, then flat",
        unit: Unit::Bytes,
        seconds: 180,
        make: |rng| {
            let (at, size) = (rng.between(5.0, 60.0), rng.between(10.0, 80.0) * MB);
            let mut noise = Rng::new(rng.0);
            Box::new(move |t| {
                pages(30.0 * MB + if t >= at { size } else { 0.0 } + noise.pm(200.0 * KB))
            })
        },
    },
    Decoy {
        name: "periodic batch job: +20-60 MB for 10-20 s every 40-60 s",
        unit: Unit::Bytes,
        seconds: 240,
        make: |rng| {
            let (size, busy, every) = (
                rng.between(20.0, 60.0) * MB,
                rng.between(10.0, 20.0),
                rng.between(40.0, 60.0),
            );
            let mut noise = Rng::new(rng.0);
            Box::new(move |t| {
                let phase = t % every;
                let held = if phase < busy {
                    size * phase / busy
                } else {
                    0.0
                };
                pages(40.0 * MB + held + noise.pm(300.0 * KB))
            })
        },
    },
    Decoy {
        name: "thread pool starting 4-16 workers, one per 0.5-2 s",
        unit: Unit::Count,
        seconds: 180,
        make: |rng| {
            let (workers, every) = (rng.between(4.0, 16.0).round(), rng.between(0.5, 2.0));
            Box::new(move |t| 2.0 + (t / every).floor().min(workers))
        },
    },
    Decoy {
        name: "connection pool: fds 10 -> 20-60 over 10-40 s",
        unit: Unit::Count,
        seconds: 180,
        make: |rng| {
            let (size, over) = (rng.between(20.0, 60.0).round(), rng.between(10.0, 40.0));
            Box::new(move |t| 10.0 + ((size - 10.0) * (t / over).min(1.0)).floor())
        },
    },
];

/// What one decoy series did while watched.
#[derive(Default)]
struct Outcome {
    leak: bool,
    early: bool,
}

fn watch(unit: Unit, seconds: usize, mut series: Series) -> Outcome {
    let mut tracker = Tracker::new(DetectorConfig::for_unit(unit));
    let mut outcome = Outcome::default();
    for t in 0..=seconds {
        tracker.push(t as f64, series(t as f64));
        if t % CHECK_EVERY == 0 {
            let trend = tracker.trend(None);
            outcome.leak |= trend.verdict == Verdict::Leak;
            outcome.early |= trend.early_leak;
        }
    }
    outcome
}

/// Seconds until the first `leak` verdict (checked every `every` seconds), if within `max`.
fn time_to_leak(
    rate: f64,
    noise: f64,
    seed: u64,
    max: usize,
    every: usize,
) -> (Option<usize>, Option<usize>) {
    let mut tracker = Tracker::new(DetectorConfig::for_unit(Unit::Bytes));
    let mut rng = Rng::new(seed);
    let mut early = None;
    for t in 0..=max {
        let value = pages(60.0 * MB + rate * t as f64 + rng.pm(noise));
        tracker.push(t as f64, value);
        if t % every == 0 {
            let trend = tracker.trend(None);
            if early.is_none() && (trend.early_leak || trend.verdict == Verdict::Leak) {
                early = Some(t);
            }
            if trend.verdict == Verdict::Leak {
                return (Some(t), early);
            }
        }
    }
    (None, early)
}

fn percentile(values: &mut [usize], q: f64) -> Option<usize> {
    values.sort_unstable();
    let i = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(i).copied()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seeds: u64 = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let started = Instant::now();
    println!("Decoys: {seeds} seeded series each, judged every {CHECK_EVERY} s while watched\n");
    println!("| decoy | watched | ever `leak` | ever early leak (before attribution) |");
    println!("|---|---|---|---|");
    let mut total = (0u64, 0u64, 0u64);
    for decoy in DECOYS {
        let (mut leaks, mut early) = (0u64, 0u64);
        for seed in 0..seeds {
            let mut rng = Rng::new(seed + 1);
            let outcome = watch(decoy.unit, decoy.seconds, (decoy.make)(&mut rng));
            leaks += u64::from(outcome.leak);
            early += u64::from(outcome.early);
        }
        total = (total.0 + seeds, total.1 + leaks, total.2 + early);
        println!(
            "| {} | {} s | {leaks}/{seeds} ({:.2} %) | {early}/{seeds} ({:.1} %) |",
            decoy.name,
            decoy.seconds,
            100.0 * leaks as f64 / seeds as f64,
            100.0 * early as f64 / seeds as f64,
        );
    }
    println!(
        "| all | | {}/{} ({:.2} %) | {}/{} ({:.1} %) |",
        total.1,
        total.0,
        100.0 * total.1 as f64 / total.0 as f64,
        total.2,
        total.0,
        100.0 * total.2 as f64 / total.0 as f64
    );

    let leak_seeds = (seeds / 10).max(10);
    println!(
        "\nLeaks under +-200 KB of noise on 60 MB: {leak_seeds} seeds per rate, time to verdict\n"
    );
    println!("| rate | called `leak` | median | 90th percentile | early leak by (median) |");
    println!("|---|---|---|---|---|");
    for (name, rate, max, every) in [
        ("1 MB/s", MB, 300, 1),
        ("100 KB/s", 100.0 * KB, 900, 2),
        ("10 KB/s", 10.0 * KB, 3600, 10),
        ("1 KB/s", KB, 7200, 30),
    ] {
        let mut times = Vec::new();
        let mut earlies = Vec::new();
        for seed in 0..leak_seeds {
            let (leak, early) = time_to_leak(rate, 200.0 * KB, seed + 1, max, every);
            times.extend(leak);
            earlies.extend(early);
        }
        let called = times.len();
        let show = |v: Option<usize>| v.map_or("-".to_string(), |s| format!("{s} s"));
        println!(
            "| {name} | {called}/{leak_seeds} within {max} s | {} | {} | {} |",
            show(percentile(&mut times, 0.5)),
            show(percentile(&mut times, 0.9)),
            show(percentile(&mut earlies, 0.5)),
        );
    }
    println!("\n({:.0} s)", started.elapsed().as_secs_f64());
}
