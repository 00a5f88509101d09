use leak_monitor::pyheap::{reader::{Mappings, Reader}, objects::{Types, Kind, container_len}};
use leak_monitor::pyframes::memory::ProcessMemory;
fn main() {
    let pid: i32 = std::env::args().nth(1).unwrap().parse().unwrap();
    let interp_head_off: u64 = 40;
    let mem = ProcessMemory { pid };
    let rt = leak_monitor::pyframes::threads::find_runtime(pid).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut r = Reader::new(&mem, Mappings::parse(&maps));
    let interp = r.u64(rt.address + interp_head_off).unwrap();
    println!("runtime {:#x} interp {interp:#x}", rt.address);
    let mut t = Types::default();
    for off in (0..40000u64).step_by(8) {
        let Some(p) = r.pointer(interp + off) else { continue };
        if let Some((_, info)) = t.of(&mut r, p) { if info.kind == Kind::Dict { let n = container_len(&mut r, p, Kind::Dict); if n.unwrap_or(0) > 20 { println!("off {off}: dict len {n:?}"); } } }
    }
}
