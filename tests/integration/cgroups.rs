//! Real cgroups for the fleet-label tests: a private tree under the cgroup2 mount, shaped like
//! the hierarchies of the kubelet, docker and systemd, and workloads started inside them (and,
//! for a pod, in their own mount namespace with the files a kubelet mounts). Everything is
//! removed on drop.

use crate::support::{python_script, Workload};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where cgroup v2 is mounted: /sys/fs/cgroup/unified in hybrid mode (this machine),
/// /sys/fs/cgroup on a pure v2 host.
fn cgroup2_mount() -> Option<PathBuf> {
    find_mount(|kind, _| kind == "cgroup2")
}

/// Where the v1 hierarchy of `controller` is mounted (`cgroup ... rw,relatime,pids`).
fn cgroup1_mount(controller: &str) -> Option<PathBuf> {
    find_mount(|kind, options| kind == "cgroup" && options.split(',').any(|o| o == controller))
}

fn find_mount(wanted: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, point, kind, options) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        wanted(kind, options).then(|| PathBuf::from(point))
    })
}

/// A private subtree of the cgroup2 hierarchy, removed (deepest first) on drop. Processes
/// still inside are moved back to the root first, so a failed test leaves nothing behind.
pub struct CgroupTree {
    mount: PathBuf,
    root: PathBuf,
}

impl CgroupTree {
    /// Creates `<cgroup2 mount>/leak-monitor-test-<pid>-<n>`. Panics without a writable
    /// cgroup2 mount: these tests need root on a host with cgroup v2.
    pub fn new() -> CgroupTree {
        CgroupTree::under(cgroup2_mount().expect("no cgroup2 mount in /proc/mounts"))
    }

    /// The same in the cgroup v1 hierarchy of `controller` (hybrid hosts), `None` when it is
    /// not mounted.
    pub fn v1(controller: &str) -> Option<CgroupTree> {
        cgroup1_mount(controller).map(CgroupTree::under)
    }

    fn under(mount: PathBuf) -> CgroupTree {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "leak-monitor-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let root = mount.join(name);
        fs::create_dir(&root)
            .unwrap_or_else(|err| panic!("cannot create {} ({err}); run as root", root.display()));
        CgroupTree { mount, root }
    }

    /// Creates the cgroup `relative` (and its parents) inside the tree; returns its path.
    pub fn create(&self, relative: &str) -> PathBuf {
        let path = self.root.join(relative.trim_start_matches('/'));
        fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
        path
    }

    /// `python3 tests/python/SCRIPT ARGS` started inside `cgroup`: the shell moves itself in
    /// before it execs Python, so the workload is in the cgroup from its first instruction.
    pub fn start(&self, cgroup: &Path, script: &str, args: &[&str]) -> Workload {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec python3 "$@""#)
            .arg(cgroup)
            .arg(python_script(script))
            .args(args);
        Workload::spawn(script, command)
    }

    /// As `start`, in a pod's shape: its own mount namespace, where /etc/hostname is the pod
    /// name and the service account's namespace file is mounted, as the kubelet does.
    pub fn start_in_pod(
        &self,
        cgroup: &Path,
        pod: &str,
        namespace: &str,
        script: &str,
        args: &[&str],
    ) -> (Workload, tempfile::TempDir) {
        let files = tempfile::tempdir().expect("temp dir for the pod's files");
        let hostname = files.path().join("hostname");
        fs::write(&hostname, format!("{pod}\n")).expect("write the pod's hostname file");
        // A private mount namespace (unshare's default propagation is private): the mounts
        // below are seen by the workload only.
        let setup = r#"echo $$ > "$0/cgroup.procs" \
            && mount --bind "$1" /etc/hostname \
            && mount -t tmpfs tmpfs /run \
            && mkdir -p /run/secrets/kubernetes.io/serviceaccount \
            && printf '%s\n' "$2" > /run/secrets/kubernetes.io/serviceaccount/namespace \
            && shift 2 && exec python3 "$@""#;
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--uts", "sh", "-c", setup])
            .arg(cgroup)
            .arg(&hostname)
            .arg(namespace)
            .arg(python_script(script))
            .args(args);
        (Workload::spawn(script, command), files)
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = Vec::new();
        collect_dirs(&self.root, &mut dirs);
        // Deepest first: a cgroup with children cannot be removed.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = fs::write(self.mount.join("cgroup.procs"), pid);
                }
            }
            let _ = fs::remove_dir(&dir);
        }
    }
}

fn collect_dirs(dir: &Path, into: &mut Vec<PathBuf>) {
    into.push(dir.to_owned());
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), into);
            }
        }
    }
}

/// A container id no other test uses: 64 hex digits from `salt`, a counter and our PID, in
/// that order so that the short ids (the first 12 digits) differ too.
pub fn container_id(salt: u8) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{salt:02x}{n:08x}{:08x}{}",
        std::process::id(),
        "c".repeat(46)
    )
}
