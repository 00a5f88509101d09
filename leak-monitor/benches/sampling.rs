//! Cost of one `Sampler::sample()` per target: starts 50 idle Python processes, attaches a
//! `Sampler` to each, then times every `sample()` over 200 rounds (one round = one daemon tick
//! over all targets). Prints median, p90, p99 and max per target tick in microseconds, and the
//! cost of a whole round; asserts nothing. Goal: under 100 us per target tick.
//!
//! Run: `cargo bench -p leak-monitor --bench sampling` (`-- --targets N --rounds N` to change
//! the defaults).

mod support;

use leak_monitor::sampling::Sampler;
use std::hint::black_box;
use std::time::{Duration, Instant};
use support::{micros, quantile, Python};

const GOAL_US: f64 = 100.0;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number after the flag"))
        .unwrap_or(default)
}

fn main() {
    let targets = arg("--targets", 50);
    let rounds = arg("--rounds", 200);
    let pythons: Vec<Python> = (0..targets).map(|_| Python::idle()).collect();
    let mut samplers: Vec<Sampler> = pythons
        .iter()
        .map(|p| Sampler::attach(p.pid()).expect("attaching a Sampler"))
        .collect();

    // Warm-up: the first ticks open the socket tables and size the buffers.
    for sampler in &mut samplers {
        for _ in 0..3 {
            black_box(sampler.sample().expect("warm-up sample"));
        }
    }

    let mut per_target = Vec::with_capacity(targets * rounds);
    let mut per_round = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let round = Instant::now();
        for sampler in &mut samplers {
            let start = Instant::now();
            black_box(sampler.sample().expect("sample"));
            per_target.push(start.elapsed());
        }
        per_round.push(round.elapsed());
        // Spread the rounds a little, as ticks are, so each round starts with a cold-ish cache.
        std::thread::sleep(Duration::from_millis(2));
    }
    per_target.sort();
    per_round.sort();

    let p = |sorted: &[Duration], q: f64| micros(quantile(sorted, q));
    println!(
        "Sampler::sample() on {targets} idle Python processes, {rounds} rounds ({} samples):",
        per_target.len()
    );
    println!(
        "  per target tick: median {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us   goal < {GOAL_US} us",
        p(&per_target, 0.5),
        p(&per_target, 0.9),
        p(&per_target, 0.99),
        p(&per_target, 1.0),
    );
    println!(
        "  per round ({targets} targets): median {:.0} us, p90 {:.0} us, max {:.0} us",
        p(&per_round, 0.5),
        p(&per_round, 0.9),
        p(&per_round, 1.0),
    );
    let verdict = if p(&per_target, 0.5) < GOAL_US {
        "median meets"
    } else {
        "median MISSES"
    };
    println!("  {verdict} the {GOAL_US} us goal");
    drop(samplers);
    drop(pythons);
}
