//! A target's fleet labels: who owns the process (container, pod, systemd unit), read from
//! procfs without asking an API server. The cgroup path gives the container, pod UID, QoS class
//! and unit (`cgroup`); a Kubernetes container's own files give its pod name and namespace.

use super::cgroup::{parse_proc_cgroup, CgroupOwner};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;

/// The labels of one target; each is absent when unknown (a host process has none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetLabels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// `docker`, `containerd`, `crio` or `podman`, when the cgroup path says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `guaranteed`, `burstable` or `besteffort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<String>,
    /// The systemd service or scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Where a pod's container finds its name and namespace: the kubelet bind-mounts the pod's
/// hostname file at /etc/hostname, and the service account's namespace file (mounted unless
/// `automountServiceAccountToken: false`).
const HOSTNAME_FILE: &str = "etc/hostname";
/// The kubelet mounts at /var/run/secrets; /run/secrets is read too for a container whose
/// /var/run is a link the kernel cannot follow inside its root.
const NAMESPACE_FILES: [&str; 2] = [
    "var/run/secrets/kubernetes.io/serviceaccount/namespace",
    "run/secrets/kubernetes.io/serviceaccount/namespace",
];

/// Kubernetes names are at most 253 characters; anything longer is not one.
const MAX_NAME: usize = 253;

impl TargetLabels {
    pub fn is_empty(&self) -> bool {
        *self == TargetLabels::default()
    }

    /// The labels as (name, value) pairs in a fixed order, known ones only.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("container_id", &self.container_id),
            ("pod", &self.pod),
            ("namespace", &self.namespace),
            ("pod_uid", &self.pod_uid),
            ("qos_class", &self.qos_class),
            ("unit", &self.unit),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
    }

    /// What a report says of the owner, as (what, name, detail): `("container", "3f4a5b6c7d8e",
    /// Some("containerd"))` (the short id, as `docker ps` and `crictl ps` show it), `("pod",
    /// "shop/web-7d9f", Some("burstable"))` (the UID when the name is unknown), `("unit",
    /// "web.service", None)`. Each renderer marks the names up its own way.
    pub fn owner_parts(&self) -> Vec<(&'static str, String, Option<&str>)> {
        let mut parts = Vec::new();
        if let Some(id) = &self.container_id {
            let short = id.chars().take(12).collect();
            parts.push(("container", short, self.container_runtime.as_deref()));
        }
        let pod = match (&self.namespace, &self.pod, &self.pod_uid) {
            (Some(namespace), Some(pod), _) => Some(format!("{namespace}/{pod}")),
            (None, Some(pod), _) => Some(pod.clone()),
            (_, None, Some(uid)) => Some(format!("UID {uid}")),
            _ => None,
        };
        if let Some(pod) = pod {
            parts.push(("pod", pod, self.qos_class.as_deref()));
        }
        if let Some(unit) = &self.unit {
            parts.push(("unit", unit.clone(), None));
        }
        parts
    }

    fn from_owner(owner: CgroupOwner) -> Self {
        TargetLabels {
            container_id: owner.container_id,
            container_runtime: owner.runtime.map(|r| r.as_str().to_owned()),
            pod_uid: owner.pod_uid,
            pod: None,
            namespace: None,
            qos_class: owner.qos_class.map(|q| q.as_str().to_owned()),
            unit: owner.unit,
        }
    }
}

/// A name for "the same program in the same place" that survives restarts: 16 hex digits of a
/// hash of the owner (container id, else systemd unit) and the command line. The PID and start
/// time change at every restart; this does not, so queries that drop `pid` continue a series.
/// FNV-1a, spelled out here because std's hasher may change between Rust releases.
pub fn stable_identity(labels: &TargetLabels, cmdline: &[String]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let owner = labels
        .container_id
        .as_deref()
        .or(labels.unit.as_deref())
        .unwrap_or("");
    let mut hash = OFFSET;
    // NUL separates the parts: it cannot occur inside an argument or a container id.
    let parts = std::iter::once(owner).chain(cmdline.iter().map(String::as_str));
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

/// The labels of process `pid`. Unreadable files leave labels out: a process that ends or
/// hides its files is still followed, just without them.
pub fn read_labels(pid: i32) -> TargetLabels {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return TargetLabels::default();
    };
    let mut labels = TargetLabels::from_owner(parse_proc_cgroup(&text));
    // Pod files only mean something in a pod's own mount namespace: in the node's, they are the
    // node's hostname and nothing.
    if labels.pod_uid.is_some() && has_own_mount_namespace(pid) {
        labels.pod = read_name(pid, HOSTNAME_FILE);
        labels.namespace = NAMESPACE_FILES.iter().find_map(|file| read_name(pid, file));
    }
    labels
}

/// True when the target's mount namespace is neither init's nor ours (when init's cannot be
/// read, as in a user namespace): the files under its root are then its own.
fn has_own_mount_namespace(pid: i32) -> bool {
    let id = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let Some(target) = id(&format!("/proc/{pid}/ns/mnt")) else {
        return false;
    };
    let reference = id("/proc/1/ns/mnt").or_else(|| id("/proc/self/ns/mnt"));
    reference.is_some_and(|reference| reference != target)
}

/// One line of a file in the target's root, if it is a plausible Kubernetes name (DNS label
/// characters). The file is the target's to shape, so it is opened with its symlinks resolved
/// inside the target's root (an absolute link would otherwise point into ours), without
/// blocking (a FIFO would hang discovery), and read only if it is a regular file, capped. On
/// kernels without openat2 (before 5.6) nothing is read.
fn read_name(pid: i32, file: &str) -> Option<String> {
    use rustix::fs::{fstat, openat2, FileType, Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        format!("/proc/{pid}/root").as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = openat2(
        &root,
        file,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    if FileType::from_raw_mode(fstat(&fd).ok()?.st_mode) != FileType::RegularFile {
        return None;
    }
    let mut buf = [0u8; MAX_NAME + 2];
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let name = std::str::from_utf8(&buf[..len]).ok()?.trim();
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    valid.then(|| name.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;

    #[test]
    fn pairs_keep_a_fixed_order_and_skip_unknowns() {
        let labels = TargetLabels {
            unit: Some("web.service".into()),
            container_id: Some("abc".into()),
            container_runtime: Some("docker".into()),
            ..TargetLabels::default()
        };
        let pairs: Vec<_> = labels.pairs().collect();
        assert_eq!(
            pairs,
            [("container_id", "abc"), ("unit", "web.service")],
            "the runtime is in the report, not on the series"
        );
        assert!(TargetLabels::default().pairs().next().is_none());
    }

    #[test]
    fn the_identity_follows_owner_and_command_line_only() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let in_container = TargetLabels {
            container_id: Some("c1".into()),
            pod: Some("web-1".into()),
            ..TargetLabels::default()
        };
        let id = stable_identity(&in_container, &args(&["python3", "app.py"]));
        assert_eq!(id.len(), 16);
        // Pod name and everything but container and command line may change: same identity.
        let renamed = TargetLabels {
            pod: Some("web-2".into()),
            ..in_container.clone()
        };
        assert_eq!(stable_identity(&renamed, &args(&["python3", "app.py"])), id);
        let other_container = TargetLabels {
            container_id: Some("c2".into()),
            ..TargetLabels::default()
        };
        for (labels, cmdline) in [
            (&other_container, args(&["python3", "app.py"])),
            (&in_container, args(&["python3", "app.py", "--debug"])),
            // The argument boundary counts.
            (&in_container, args(&["python3 app.py"])),
            (&TargetLabels::default(), args(&["python3", "app.py"])),
        ] {
            assert_ne!(
                stable_identity(labels, &cmdline),
                id,
                "{labels:?} {cmdline:?}"
            );
        }
        // Fixed across releases: dashboards and stored reports depend on it.
        assert_eq!(
            stable_identity(&TargetLabels::default(), &[]),
            "af63bd4c8601b7df"
        );
    }

    #[test]
    fn names_are_read_from_regular_files_only_and_never_block() {
        use std::os::unix::fs::symlink;
        let me = i32::try_from(std::process::id()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Paths relative to our own root, as the target's are to its.
        let rel = |name: &str| {
            let path = dir.path().join(name);
            path.strip_prefix("/").unwrap().to_str().unwrap().to_owned()
        };
        std::fs::write(dir.path().join("good"), "web-7d9f\n").unwrap();
        assert_eq!(read_name(me, &rel("good")).as_deref(), Some("web-7d9f"));
        std::fs::write(dir.path().join("bad"), "root:x:0:0\n").unwrap();
        assert_eq!(read_name(me, &rel("bad")), None);
        std::fs::write(dir.path().join("long"), "a".repeat(300)).unwrap();
        assert_eq!(read_name(me, &rel("long")), None);
        symlink(dir.path().join("good"), dir.path().join("link")).unwrap();
        assert_eq!(read_name(me, &rel("link")).as_deref(), Some("web-7d9f"));
        // A FIFO with no writer would block a plain open forever.
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert_eq!(read_name(me, &rel("fifo")), None);
        assert_eq!(read_name(me, &rel("missing")), None);
    }

    #[test]
    fn a_missing_process_has_no_labels() {
        assert_eq!(read_labels(i32::MAX), TargetLabels::default());
        assert!(read_labels(i32::MAX).is_empty());
    }
}
