//! Who owns a process, read from its cgroup path (/proc/PID/cgroup): the container id and
//! runtime (docker, containerd, CRI-O, podman), the Kubernetes pod UID and QoS class, and the
//! systemd unit or scope. Pure: text in, labels out; unit-tested on real-shaped paths.
//!
//! Runtimes and cgroup drivers name the same things differently:
//!
//! ```text
//! docker, systemd driver    /system.slice/docker-<64 hex>.scope
//! docker, cgroupfs driver   /docker/<64 hex>
//! kubelet, systemd driver   /kubepods.slice/kubepods-burstable.slice/
//!                             kubepods-burstable-pod<uid with _>.slice/cri-containerd-<64 hex>.scope
//!                             (crio-<64 hex>.scope under CRI-O)
//! kubelet, cgroupfs driver  /kubepods/besteffort/pod<uid>/<64 hex>
//!                             (Guaranteed pods sit directly under kubepods)
//! podman                    /machine.slice/libpod-<64 hex>.scope[/container]
//! systemd                   /system.slice/nginx.service, /user.slice/user-1000.slice/session-2.scope
//! ```
//!
//! The innermost match wins, so nested hierarchies (a kind node is itself a docker container)
//! name the innermost container. Paths may start anywhere (a cgroup namespace shows `/..`).

use serde::{Deserialize, Serialize};

/// The owner of a process as its cgroup path says; every field is absent when not found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupOwner {
    /// The full 64-hex container id.
    pub container_id: Option<String>,
    pub runtime: Option<Runtime>,
    /// The pod UID in its canonical dashed form.
    pub pod_uid: Option<String>,
    pub qos_class: Option<QosClass>,
    /// The innermost systemd service or scope that is not a container's own scope.
    pub unit: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
}

/// The Kubernetes QoS class, as the kubelet's cgroup tree encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "guaranteed",
            QosClass::Burstable => "burstable",
            QosClass::BestEffort => "besteffort",
        }
    }
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
        }
    }
}

/// Reads the whole of /proc/PID/cgroup. The cgroup v2 line (`0::PATH`) comes first; v1 lines
/// (the `name=systemd` hierarchy, then the others in file order) fill what it left unknown, as
/// on hosts in hybrid mode where the runtime only writes the v1 hierarchies.
pub fn parse_proc_cgroup(text: &str) -> CgroupOwner {
    let mut lines: Vec<(u8, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let id = fields.next()?;
            let controllers = fields.next()?;
            let path = fields.next()?;
            let rank = match (id, controllers) {
                ("0", "") => 0,
                (_, "name=systemd") => 1,
                _ => 2,
            };
            Some((rank, path))
        })
        .collect();
    lines.sort_by_key(|(rank, _)| *rank);
    let mut owner = CgroupOwner::default();
    for (_, path) in lines {
        owner.fill_from(parse_path(path));
    }
    owner
}

impl CgroupOwner {
    pub fn is_empty(&self) -> bool {
        *self == CgroupOwner::default()
    }

    /// Fills the fields still unknown from `other`; container id and runtime go together.
    fn fill_from(&mut self, other: CgroupOwner) {
        if self.container_id.is_none() {
            self.container_id = other.container_id;
            self.runtime = other.runtime;
        }
        if self.pod_uid.is_none() {
            self.pod_uid = other.pod_uid;
            self.qos_class = other.qos_class;
        }
        if self.unit.is_none() {
            self.unit = other.unit;
        }
    }
}

/// The owner one cgroup path names.
pub fn parse_path(path: &str) -> CgroupOwner {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "..")
        .collect();
    let mut owner = CgroupOwner::default();
    let mut in_kubepods = false;
    for (i, part) in parts.iter().enumerate() {
        let parent = i.checked_sub(1).and_then(|p| parts.get(p)).copied();
        if let Some((id, runtime)) = container_in(part, parent, in_kubepods) {
            owner.container_id = Some(id);
            owner.runtime = runtime;
            continue;
        }
        if *part == "kubepods" || *part == "kubepods.slice" {
            in_kubepods = true;
            // A new kubepods tree (nested kubelets) starts over.
            owner.pod_uid = None;
            owner.qos_class = Some(QosClass::Guaranteed);
            continue;
        }
        if in_kubepods {
            if let Some(qos) = qos_in(part) {
                owner.qos_class = Some(qos);
            }
            if let Some(uid) = pod_uid_in(part) {
                owner.pod_uid = Some(uid);
            }
            continue;
        }
        if is_unit(part) {
            owner.unit = Some((*part).to_owned());
        }
    }
    if owner.pod_uid.is_none() {
        owner.qos_class = None;
    }
    owner
}

/// Runtime prefixes of the systemd driver's container scopes. `*-conmon-*` scopes hold the
/// runtime's monitor process, not the container, and are not matched.
const SCOPE_PREFIXES: [(&str, Runtime); 5] = [
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    ("crio-", Runtime::Crio),
    ("libpod-", Runtime::Podman),
    ("containerd-", Runtime::Containerd),
];

fn container_in(
    part: &str,
    parent: Option<&str>,
    in_kubepods: bool,
) -> Option<(String, Option<Runtime>)> {
    let bare = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in SCOPE_PREFIXES {
        if let Some(id) = bare.strip_prefix(prefix).filter(|id| is_container_id(id)) {
            return Some((id.to_owned(), Some(runtime)));
        }
    }
    // The cgroupfs driver names the cgroup by the bare id; the parent says whose it is.
    if !is_container_id(part) {
        return None;
    }
    let runtime = match parent {
        Some("docker") => Some(Runtime::Docker),
        Some("libpod_parent") => Some(Runtime::Podman),
        _ if in_kubepods => None,
        _ => return None,
    };
    Some((part.to_owned(), runtime))
}

fn is_container_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `kubepods-burstable.slice` / `burstable` (and besteffort). Guaranteed pods have no QoS
/// level of their own: they sit directly under kubepods.
fn qos_in(part: &str) -> Option<QosClass> {
    let level = part
        .strip_prefix("kubepods-")
        .and_then(|p| p.strip_suffix(".slice"))
        .unwrap_or(part);
    match level {
        "burstable" => Some(QosClass::Burstable),
        "besteffort" => Some(QosClass::BestEffort),
        _ => None,
    }
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid with _>.slice` (systemd, which cannot
/// have `-` inside a name component). Static pods have a 32-hex UID without dashes.
fn pod_uid_in(part: &str) -> Option<String> {
    let name = part.strip_suffix(".slice").unwrap_or(part);
    let at = name.rfind("pod")?;
    let before = &name[..at];
    if !(before.is_empty() || before.starts_with("kubepods") && before.ends_with('-')) {
        return None;
    }
    let uid = name[at + 3..].replace('_', "-");
    let hex = uid.bytes().filter(u8::is_ascii_hexdigit).count();
    let well_formed = uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && hex == 32
        && (uid.len() == 32 || uid.len() == 36);
    well_formed.then_some(uid)
}

fn is_unit(part: &str) -> bool {
    let Some(stem) = part
        .strip_suffix(".service")
        .or_else(|| part.strip_suffix(".scope"))
    else {
        return false;
    };
    // `*-conmon-<id>.scope` is a container runtime's helper, not a unit anyone deploys.
    !stem.is_empty() && !stem.contains("-conmon-")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;

    const ID: &str = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344556677aa";
    const UID: &str = "8c5f1d2e-7a3b-4c9d-9e0f-1a2b3c4d5e6f";

    fn owner(path: &str) -> CgroupOwner {
        parse_path(path)
    }

    #[test]
    fn kubelet_systemd_driver_containerd_and_crio() {
        let uid_ = UID.replace('-', "_");
        for (scope, runtime) in [
            ("cri-containerd", Runtime::Containerd),
            ("crio", Runtime::Crio),
        ] {
            let path = format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/{scope}-{ID}.scope"
            );
            let got = owner(&path);
            assert_eq!(got.container_id.as_deref(), Some(ID), "{path}");
            assert_eq!(got.runtime, Some(runtime));
            assert_eq!(got.pod_uid.as_deref(), Some(UID));
            assert_eq!(got.qos_class, Some(QosClass::Burstable));
            assert_eq!(got.unit, None, "a container scope is not a unit");
        }
        // Guaranteed: the pod slice sits directly under kubepods.slice.
        let got = owner(&format!(
            "/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(got.qos_class, Some(QosClass::Guaranteed));
        assert_eq!(got.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn kubelet_cgroupfs_driver() {
        let got = owner(&format!("/kubepods/besteffort/pod{UID}/{ID}"));
        assert_eq!(got.container_id.as_deref(), Some(ID));
        assert_eq!(
            got.runtime, None,
            "the bare id does not say which CRI runtime"
        );
        assert_eq!(got.pod_uid.as_deref(), Some(UID));
        assert_eq!(got.qos_class, Some(QosClass::BestEffort));
        let guaranteed = owner(&format!("/kubepods/pod{UID}/{ID}"));
        assert_eq!(guaranteed.qos_class, Some(QosClass::Guaranteed));
        // A static (mirror) pod's UID is a 32-hex hash.
        let static_uid = "6f3d0c1b2a39485766778899aabbccdd";
        let got = owner(&format!("/kubepods/burstable/pod{static_uid}/{ID}"));
        assert_eq!(got.pod_uid.as_deref(), Some(static_uid));
    }

    #[test]
    fn docker_both_drivers_and_podman() {
        let got = owner(&format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(got.container_id.as_deref(), Some(ID));
        assert_eq!(got.runtime, Some(Runtime::Docker));
        assert_eq!((got.pod_uid, got.qos_class, got.unit), (None, None, None));

        let got = owner(&format!("/docker/{ID}"));
        assert_eq!(got.container_id.as_deref(), Some(ID));
        assert_eq!(got.runtime, Some(Runtime::Docker));

        let got = owner(&format!("/machine.slice/libpod-{ID}.scope/container"));
        assert_eq!(got.runtime, Some(Runtime::Podman));
        assert_eq!(got.container_id.as_deref(), Some(ID));
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        let got = owner(&rootless);
        assert_eq!(got.container_id.as_deref(), Some(ID));
        assert_eq!(got.unit.as_deref(), Some("user@1000.service"));
        // The runtime's monitor process is not the container.
        let conmon = owner(&format!("/machine.slice/libpod-conmon-{ID}.scope"));
        assert_eq!(conmon, CgroupOwner::default());
    }

    #[test]
    fn systemd_units_and_scopes() {
        assert_eq!(
            owner("/system.slice/nginx.service").unit.as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            owner("/user.slice/user-1000.slice/session-2.scope")
                .unit
                .as_deref(),
            Some("session-2.scope")
        );
        let app = "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-term-42.scope";
        assert_eq!(owner(app).unit.as_deref(), Some("app-gnome-term-42.scope"));
        assert_eq!(owner("/init.scope").unit.as_deref(), Some("init.scope"));
        for nothing in ["/", "", "/user.slice", "/system.slice/.service", "/a/b"] {
            assert_eq!(owner(nothing), CgroupOwner::default(), "{nothing:?}");
        }
    }

    #[test]
    fn nested_hierarchies_name_the_innermost_container() {
        // A kind node is a docker container running its own kubelet.
        let outer = "1111111111111111111111111111111111111111111111111111111111111111";
        let path = format!("/system.slice/docker-{outer}.scope/kubepods/burstable/pod{UID}/{ID}");
        let got = owner(&path);
        assert_eq!(got.container_id.as_deref(), Some(ID));
        assert_eq!(got.pod_uid.as_deref(), Some(UID));
        // Seen from inside a cgroup namespace.
        let got = owner(&format!("/../../kubepods/pod{UID}/{ID}"));
        assert_eq!(got.container_id.as_deref(), Some(ID));
    }

    #[test]
    fn look_alikes_are_not_matched() {
        let short = &ID[..63];
        for path in [
            format!("/docker/{short}"),
            format!("/system.slice/docker-{short}.scope"),
            format!("/system.slice/{ID}"),
            "/kubepods/burstable/podnot-a-uid/abc".to_owned(),
            format!("/kubepods/burstable/xpod{UID}"),
            format!("/process_api/{}", &ID[..32]),
        ] {
            let got = owner(&path);
            assert_eq!(got.container_id, None, "{path}");
            assert_eq!(got.pod_uid, None, "{path}");
        }
    }

    #[test]
    fn v2_first_then_v1_in_hybrid_mode() {
        let hybrid = format!(
            "12:memory:/kubepods/burstable/pod{UID}/{ID}\n\
             1:name=systemd:/system.slice/containerd.service\n\
             0::/\n"
        );
        let got = parse_proc_cgroup(&hybrid);
        assert_eq!(got.container_id.as_deref(), Some(ID));
        assert_eq!(got.pod_uid.as_deref(), Some(UID));
        assert_eq!(got.unit.as_deref(), Some("containerd.service"));

        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(parse_proc_cgroup(&v2).container_id.as_deref(), Some(ID));
        // The v2 line wins over a v1 line naming something else.
        let both = format!(
            "4:memory:/docker/{}\n0::/system.slice/docker-{ID}.scope\n",
            "2".repeat(64)
        );
        assert_eq!(parse_proc_cgroup(&both).container_id.as_deref(), Some(ID));
        assert!(parse_proc_cgroup("").is_empty());
        assert!(parse_proc_cgroup("garbage\n::\n").is_empty());
    }
}
