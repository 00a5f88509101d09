use leak_monitor::pyheap::{reader::{Mappings, Reader}, objects::{Types, explain_type}};
use leak_monitor::pyframes::memory::ProcessMemory;
fn main() {
    let pid: i32 = std::env::args().nth(1).unwrap().parse().unwrap();
    let addr = u64::from_str_radix(&std::env::args().nth(2).unwrap(), 16).unwrap();
    let mem = ProcessMemory { pid };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut r = Reader::new(&mem, Mappings::parse(&maps));
    let ty = r.u64(addr + 8).unwrap();
    println!("{}", explain_type(&mut r, ty));
    let mut t = Types::default();
    println!("{:?}", t.get(&mut r, ty));
}
