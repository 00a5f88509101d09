//! Cost of one memory breakdown on targets of 100 MB, 1 GB and 4 GB RSS (60% small Python
//! objects in pymalloc, 25% glibc heap blocks of 4-100 KiB, 15% 1 MiB blocks that malloc
//! mmaps): the time reading smaps (the kernel walks the target's page tables under its mmap
//! lock meanwhile), the time reading pymalloc's and glibc's state, and this thread's CPU time.
//! The target measures the lock from its side: a thread maps and unmaps 64 KiB in a loop (each
//! needs the mmap lock for writing) and reports the longest call during each breakdown, and
//! during the same time without one.
//!
//! Run: `cargo bench -p leak-monitor --bench breakdown` (root, or the target's owner with
//! ptrace access); `-- --sizes 100,1000` to choose the sizes in MB, `--rounds N` (default 5).
//! Prints figures; asserts nothing.

mod support;

use leak_monitor::memory::BreakdownSource;
use std::time::{Duration, Instant};
use support::{median, Python};

const TARGET: &str = r#"
import mmap, sys, threading, time
mb = int(sys.argv[1])
small = [bytes(200) + i.to_bytes(8, "little") for i in range(mb * 1024 * 1024 * 60 // 100 // 250)]
medium = [bytearray(4096 + (i * 7919) % 98304) for i in range(mb * 1024 * 1024 * 25 // 100 // 53248)]
large = [bytearray(1 << 20) for _ in range(mb * 15 // 100)]
worst = 0.0
def stall():
    global worst
    while True:
        t = time.perf_counter()
        m = mmap.mmap(-1, 65536)
        m.close()
        worst = max(worst, time.perf_counter() - t)
        time.sleep(0.0002)
threading.Thread(target=stall, daemon=True).start()
print("READY", flush=True)
for line in sys.stdin:
    print(f"{worst * 1000:.3f}", flush=True)
    worst = 0.0
"#;

struct Args {
    sizes: Vec<u64>,
    rounds: usize,
}

fn args() -> Args {
    let mut out = Args {
        sizes: vec![100, 1000, 4000],
        rounds: 5,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        match argv[i].as_str() {
            "--sizes" => {
                out.sizes = argv
                    .get(i + 1)
                    .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
                    .unwrap_or_default();
                i += 1;
            }
            "--rounds" => {
                out.rounds = argv.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(5);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The target's longest mmap+munmap since the last ask, in ms.
fn worst_stall(target: &mut Python) -> f64 {
    target.send("?");
    target.read_line().trim().parse().unwrap_or(f64::NAN)
}

fn main() {
    let args = args();
    println!(
        "memory breakdown: one breakdown of a target (median of {} rounds); load average {}",
        args.rounds,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>14} {:>12} {:>9} {:>15} {:>18} {:>15}",
        "target",
        "rss MiB",
        "mappings",
        "smaps ms",
        "allocators ms",
        "pymalloc ms",
        "cpu ms",
        "stall ms (bd)",
        "stall ms (smaps)",
        "stall ms (idle)"
    );
    for &mb in &args.sizes {
        let mut target = Python::start(&["-c", TARGET, &mb.to_string()]);
        let runtime = leak_monitor::targets::runtime::discover(target.pid()).map(Into::into);
        let mut source = BreakdownSource::new(target.pid(), runtime);
        let mut smaps: Vec<f64> = Vec::new();
        let mut alloc: Vec<f64> = Vec::new();
        let mut cpu: Vec<f64> = Vec::new();
        let mut stall: Vec<f64> = Vec::new();
        let mut idle: Vec<f64> = Vec::new();
        let mut pymalloc: Vec<f64> = Vec::new();
        let mut smaps_stall: Vec<f64> = Vec::new();
        let mut rss = 0;
        let mut mappings = 0;
        for _ in 0..args.rounds {
            // The same span without a breakdown: the target's own stall figure.
            worst_stall(&mut target);
            let began = Instant::now();
            let (breakdown, cost) = source.take(0.0).expect("breakdown");
            let spent = began.elapsed();
            stall.push(worst_stall(&mut target));
            std::thread::sleep(spent.max(Duration::from_millis(50)));
            idle.push(worst_stall(&mut target));
            // smaps alone: the part of the stall that is the page-table walk.
            let _ = std::fs::read_to_string(format!("/proc/{}/smaps", target.pid()));
            smaps_stall.push(worst_stall(&mut target));
            smaps.push(cost.smaps_seconds * 1e3);
            alloc.push(cost.allocators_seconds * 1e3);
            cpu.push(cost.cpu_seconds * 1e3);
            rss = breakdown.statm_rss >> 20;
            pymalloc.push(cost.pymalloc_seconds * 1e3);
            mappings = cost.mappings;
            if breakdown.pymalloc.is_none() {
                eprintln!("pymalloc not read: {:?}", breakdown.notes);
            }
        }
        println!(
            "{:>6}MB {:>9} {:>9} {:>9.1} {:>14.1} {:>12.1} {:>9.1} {:>15.2} {:>18.2} {:>15.2}",
            mb,
            rss,
            mappings,
            median(&smaps),
            median(&alloc),
            median(&pymalloc),
            median(&cpu),
            median(&stall),
            median(&smaps_stall),
            median(&idle),
        );
    }
}
