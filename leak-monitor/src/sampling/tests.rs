//! The Sampler against real Python processes: each test makes a child open files, sockets,
//! pipes, threads or memory, and checks the sample counts them.

use super::testkit::PyChild;
use super::{FdKind, Protocol, Sample, SampleError, Sampler};
use crate::resource::Bytes;
use crate::targets::TargetId;

fn sample(sampler: &mut Sampler) -> Sample {
    sampler.sample().expect("sample a live child")
}

fn socket_count(sample: &Sample, protocol: Protocol, state: &str) -> u64 {
    sample
        .sockets
        .by_protocol_state
        .get(&(protocol, state))
        .copied()
        .unwrap_or(0)
}

fn fd_delta(before: &Sample, after: &Sample, kind: FdKind) -> i64 {
    after.fds.get(kind) as i64 - before.fds.get(kind) as i64
}

#[test]
fn counts_fds_by_kind_exactly() {
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    let before = sample(&mut sampler);
    // stdin and stdout are pipes, stderr is /dev/null.
    assert!(before.fds.get(FdKind::Pipe) >= 2, "{before:?}");
    assert!(before.fds.get(FdKind::Other) >= 1, "{before:?}");

    child.run(
        "files = [open('/etc/passwd') for _ in range(7)]\n\
         pipes = [os.pipe() for _ in range(3)]\n\
         anon = [select.epoll(), os.eventfd(0)]\n\
         devs = [open('/dev/null') for _ in range(2)]",
    );
    let after = sample(&mut sampler);
    assert_eq!(fd_delta(&before, &after, FdKind::File), 7);
    assert_eq!(fd_delta(&before, &after, FdKind::Pipe), 6);
    assert_eq!(fd_delta(&before, &after, FdKind::AnonInode), 2);
    assert_eq!(fd_delta(&before, &after, FdKind::Other), 2);
    assert_eq!(fd_delta(&before, &after, FdKind::Socket), 0);
    assert_eq!(after.fds.total(), before.fds.total() + 17);
    assert_eq!(after.sockets.total(), 0);

    child.run(
        "for f in files + devs: f.close()\n\
         for r, w in pipes: os.close(r); os.close(w)\n\
         anon[0].close(); os.close(anon[1])",
    );
    let closed = sample(&mut sampler);
    assert_eq!(closed.fds, before.fds);
}

#[test]
fn tcp_sockets_by_state() {
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    child.run(
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(16)\n\
         clients = [socket.create_connection(srv.getsockname()) for _ in range(5)]\n\
         accepted = [srv.accept()[0] for _ in range(5)]\n\
         srv6 = socket.socket(socket.AF_INET6); srv6.bind(('::1', 0)); srv6.listen()\n\
         unbound = socket.socket()",
    );
    let s = sample(&mut sampler);
    assert_eq!(socket_count(&s, Protocol::Tcp, "listen"), 1, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Tcp, "established"), 10, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Tcp6, "listen"), 1, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Tcp, "close"), 1, "{s:?}");
    assert_eq!(s.sockets.total(), 13);
    assert_eq!(s.fds.get(FdKind::Socket), 13);

    // The server side closes two connections; their clients see EOF and sit in close_wait.
    child.run(
        "for a in accepted[:2]: a.close()\n\
         for c in clients[:2]: assert c.recv(1) == b''",
    );
    let s = sample(&mut sampler);
    assert_eq!(socket_count(&s, Protocol::Tcp, "close_wait"), 2, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Tcp, "established"), 6, "{s:?}");
    assert_eq!(s.sockets.total(), 11);

    child.run("for c in clients + accepted[2:]: c.close()");
    let s = sample(&mut sampler);
    assert_eq!(socket_count(&s, Protocol::Tcp, "established"), 0, "{s:?}");
    assert_eq!(s.sockets.total(), 3);
}

#[test]
fn udp_unix_and_other_sockets() {
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    child.run(
        "D = socket.SOCK_DGRAM\n\
         keep.append(socket.socket(socket.AF_INET, D))\n\
         b = socket.socket(socket.AF_INET, D); b.bind(('127.0.0.1', 0)); keep.append(b)\n\
         c = socket.socket(socket.AF_INET, D); c.connect(b.getsockname()); keep.append(c)\n\
         u6 = socket.socket(socket.AF_INET6, D); u6.bind(('::1', 0)); keep.append(u6)\n\
         keep.extend(socket.socketpair())\n\
         l = socket.socket(socket.AF_UNIX); l.bind('\\0' + str(os.getpid()) + '-leakmon'); l.listen()\n\
         keep.append(l)\n\
         keep.append(socket.socket(socket.AF_UNIX, D))\n\
         keep.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))",
    );
    let s = sample(&mut sampler);
    // An unbound UDP socket is in no table; a bound one is listed unconnected.
    assert_eq!(socket_count(&s, Protocol::Udp, "unconnected"), 2, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Udp, "established"), 1, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Udp6, "unconnected"), 1, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Unix, "connected"), 2, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Unix, "listening"), 1, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Unix, "unconnected"), 1, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Other, "unknown"), 1, "{s:?}");
    assert_eq!(s.sockets.total(), 9);
    assert_eq!(s.fds.get(FdKind::Socket), 9);
}

#[test]
fn a_socket_on_two_fds_counts_once() {
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    child.run("s = socket.socket(); keep.append(s); keep.append(os.dup(s.fileno()))");
    let s = sample(&mut sampler);
    assert_eq!(s.fds.get(FdKind::Socket), 2);
    assert_eq!(s.sockets.total(), 1);
}

#[test]
fn threads_and_memory() {
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    let before = sample(&mut sampler);
    assert_eq!(before.threads, 1);
    child.run(
        "stop = threading.Event()\n\
         workers = [threading.Thread(target=stop.wait) for _ in range(4)]\n\
         for w in workers: w.start()\n\
         keep.append(b'\\x01' * (64 << 20))",
    );
    let after = sample(&mut sampler);
    assert_eq!(after.threads, 5);
    let grown = after.memory.anon.0 - before.memory.anon.0;
    assert!(grown >= 60 << 20, "anon grew by {grown} bytes only");
    assert!(after.memory.total.0 - before.memory.total.0 >= 60 << 20);
    // VmRSS is the sum of the three counters.
    let m = after.memory;
    assert_eq!(m.total.0, m.anon.0 + m.file.0 + m.shmem.0, "{m:?}");
    assert!(
        m.file > Bytes(0),
        "the interpreter's own pages are file-backed"
    );

    // join() returns when the Python thread is done; the OS thread exits a moment later.
    child.run("stop.set()\nfor w in workers: w.join()");
    let settled = (0..500).find_map(|_| {
        let s = sample(&mut sampler);
        (s.threads == 1).then_some(s).or_else(|| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            None
        })
    });
    assert!(settled.is_some(), "threads never went back to 1");
}

#[test]
fn limits_report_fd_soft_limit_and_memory() {
    let mut child = PyChild::spawn(&[]);
    child.run(
        "import resource\n\
         soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (321, hard))",
    );
    let sampler = Sampler::attach(child.pid()).unwrap();
    let limits = sampler.limits().unwrap();
    assert_eq!(limits.max_fds, Some(321));
    let ram = procfs_mem_total();
    let memory = limits.memory.expect("a memory limit (cgroup or RAM)");
    assert!(memory.0 > 0 && memory <= ram, "{memory:?} vs RAM {ram:?}");
}

fn procfs_mem_total() -> Bytes {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    Bytes(kib * 1024)
}

#[test]
fn pss_is_available_on_request() {
    let child = PyChild::spawn(&[]);
    let sampler = Sampler::attach(child.pid()).unwrap();
    let pss = sampler.pss_slow().unwrap();
    assert!(pss > Bytes(1 << 20), "{pss:?}");
}

#[test]
fn bogus_pids_are_gone() {
    for pid in [i32::MAX, 0, -5] {
        assert!(
            matches!(Sampler::attach(pid), Err(SampleError::Gone { .. })),
            "{pid}"
        );
    }
}

#[test]
fn a_reaped_child_is_gone() {
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    sample(&mut sampler);
    child.kill_and_reap();
    assert!(matches!(sampler.sample(), Err(SampleError::Gone { .. })));
    assert!(matches!(
        Sampler::attach(child.pid()),
        Err(SampleError::Gone { .. })
    ));
}

#[test]
fn a_zombie_child_is_gone() {
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    child.run("s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); keep.append(s)");
    sample(&mut sampler);
    child.kill_leave_zombie();
    assert!(matches!(sampler.sample(), Err(SampleError::Gone { .. })));
}

#[test]
fn attach_target_checks_the_start_time() {
    let child = PyChild::spawn(&[]);
    let pid = child.pid();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start_ticks = crate::targets::stat::parse_stat(&stat).unwrap().start_ticks;
    let id = TargetId { pid, start_ticks };
    assert!(Sampler::attach_target(id).is_ok());
    let reused = TargetId {
        pid,
        start_ticks: start_ticks + 1,
    };
    assert!(matches!(
        Sampler::attach_target(reused),
        Err(SampleError::Gone { .. })
    ));
}

#[test]
fn many_sockets_beyond_one_read_chunk() {
    // Enough rows that the tcp table spans several 16 KiB reads.
    let mut child = PyChild::spawn(&[]);
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    child.run(
        "import resource\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))\n\
         srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1024)\n\
         clients = [socket.create_connection(srv.getsockname()) for _ in range(400)]\n\
         accepted = [srv.accept()[0] for _ in range(400)]",
    );
    let s = sample(&mut sampler);
    assert_eq!(socket_count(&s, Protocol::Tcp, "established"), 800, "{s:?}");
    assert_eq!(socket_count(&s, Protocol::Tcp, "listen"), 1);
}

/// A memory cgroup made for a test (a parent with a limit, a child without), removed on drop.
struct TestCgroup {
    parent: std::path::PathBuf,
    child: std::path::PathBuf,
}

impl TestCgroup {
    /// Under our own v1 memory cgroup; `Err` says why that is not possible on this machine.
    fn create(limit: u64) -> Result<Self, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let path = own
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let _ = parts.next();
                let controllers = parts.next()?;
                let path = parts.next()?;
                controllers
                    .split(',')
                    .any(|c| c == "memory")
                    .then_some(path)
            })
            .ok_or("no cgroup v1 memory hierarchy")?;
        let base = std::path::Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
        let parent = base.join(super::testkit::unique_marker("cg"));
        let child = parent.join("inner");
        std::fs::create_dir(&parent).map_err(|e| format!("mkdir {parent:?}: {e}"))?;
        let this = Self { parent, child };
        std::fs::create_dir(&this.child).map_err(|e| format!("mkdir: {e}"))?;
        std::fs::write(this.parent.join("memory.limit_in_bytes"), limit.to_string())
            .map_err(|e| format!("set limit: {e}"))?;
        Ok(this)
    }

    fn enter(&self, pid: i32) {
        std::fs::write(self.child.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.child);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

#[test]
fn cgroup_memory_limit_is_found_up_the_tree() {
    let limit = 300u64 << 20;
    let cgroup = match TestCgroup::create(limit) {
        Ok(cgroup) => cgroup,
        Err(why) => {
            eprintln!("skipped: cannot make a test cgroup here: {why}");
            return;
        }
    };
    let mut child = PyChild::spawn(&[]);
    cgroup.enter(child.pid());
    let sampler = Sampler::attach(child.pid()).unwrap();
    assert_eq!(sampler.limits().unwrap().memory, Some(Bytes(limit)));
    // The process must leave before its cgroup can be removed.
    child.kill_and_reap();
    drop(cgroup);
}

/// A target whose counts do not move may be served its last sample, but a change that moves no
/// count (a file swapped for a pipe) shows within `FULL_EVERY` ticks, and a new fd at once.
#[test]
fn a_quiet_target_is_read_in_full_every_few_ticks() {
    let mut child = PyChild::spawn(&[]);
    child.run("kept = open('/etc/passwd')");
    let mut sampler = Sampler::attach(child.pid()).unwrap();
    let before = sample(&mut sampler);
    child.run("kept.close(); kept, w = os.pipe(); os.close(w)");
    let swapped = (0..super::FULL_EVERY)
        .map(|_| sample(&mut sampler))
        .last()
        .unwrap();
    assert_eq!(fd_delta(&before, &swapped, FdKind::File), -1, "{swapped:?}");
    assert_eq!(fd_delta(&before, &swapped, FdKind::Pipe), 1, "{swapped:?}");

    child.run("more = open('/etc/passwd')");
    let opened = sample(&mut sampler);
    assert_eq!(fd_delta(&swapped, &opened, FdKind::File), 1, "{opened:?}");
}
