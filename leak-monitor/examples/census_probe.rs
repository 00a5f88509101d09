use leak_monitor::pyheap::{census::Bounds, HeapSource};
fn main() {
    let pid: i32 = std::env::args().nth(1).unwrap().parse().unwrap();
    let source = HeapSource::attach(pid).expect("attach");
    for round in 0..4 {
        let t = std::time::Instant::now();
        let (census, named) = source.census(Bounds::default(), &|f: &str| !f.contains("/lib/python") && !f.starts_with('<')).expect("census");
        println!("round {round}: {} objects in {:?}, partial {}, unreadable {}, reads {:?}, types {}, containers {}, named {}", census.objects, t.elapsed(), census.partial, census.unreadable, census.reads, census.types.len(), census.containers.len(), named.len());
        let mut top: Vec<_> = census.types.iter().collect();
        top.sort_by_key(|(_, c)| std::cmp::Reverse(c.count));
        for (n, c) in top.iter().take(6) { println!("   {n}: {} {}", c.count, c.bytes); }
        let mut nn: Vec<_> = named.values().collect();
        nn.sort_by_key(|n| std::cmp::Reverse(n.len));
        for n in nn.iter().take(8) { println!("   named {} {:?} len {} files {:?}", n.path.display(), n.kind, n.len, n.path.files); }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
