//! config.json: the OCI runtime spec of a container, following Docker's
//! defaults (moby `oci/defaults.go`, containerd `oci/spec.go`):
//!
//! - namespaces: mount, PID, UTS, IPC, network (joined when a netns path is
//!   given), and cgroup on a pure cgroup v2 host (as Docker's default
//!   `cgroupns=private` there);
//! - Docker's 14 default capabilities, then `cap_add`/`cap_drop` as Docker
//!   applies them ("ALL" in cap_add grants all but the dropped ones; "ALL"
//!   in cap_drop keeps only the added ones); no inheritable or ambient set;
//! - mounts: /proc, /dev (tmpfs), /dev/pts, /dev/shm (64 MiB), /dev/mqueue,
//!   /sys read-only, /sys/fs/cgroup read-only, the bundle's hostname, hosts
//!   and resolv.conf on /etc (writable, unless the user mounts over them),
//!   then the user's mounts, then the secret and config files (read-only
//!   binds of the bundle's `files` tmpfs), then the init;
//! - masked and read-only /proc and /sys paths; a devices cgroup that denies
//!   everything but the standard devices (runc adds null, zero, full, tty,
//!   random, urandom, ptmx and the pts);
//! - cgroupsPath `/rswarm/<id>`; memory limit with memory+swap equal to it (so
//!   the limit really OOM-kills), CPU quota per 100 ms period from
//!   `nano_cpus`, pids limit;
//! - `noNewPrivileges` false as in Docker; no rlimits unless asked (the
//!   container inherits the daemon's, as with Docker's default-ulimits unset).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilities, LinuxCapabilitiesBuilder,
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
    UserBuilder,
};

use super::cgroups::cgroups_path;
use super::init::InitPlan;
use super::rootfs::{ResolvedUser, HOSTNAME_FILE, HOSTS_FILE, RESOLV_FILE};
use super::{ContainerConfig, ExecConfig, MountKind, RuntimeError};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CPU_PERIOD: u64 = 100_000;

/// Docker's default capability set.
/// Docker's default capability set for containers.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, for "ALL" (and to check `--cap-add`/`--cap-drop` names):
/// the spec library's one list.
pub use rswarm_proto::spec::capabilities::ALL as ALL_CAPS;

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn invalid(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidConfig(msg.into())
}

fn oci<T>(r: Result<T, oci_spec::OciSpecError>) -> Result<T, RuntimeError> {
    r.map_err(|e| invalid(e.to_string()))
}

/// Checks what can be checked before anything is created.
pub(crate) fn validate(cfg: &ContainerConfig) -> Result<(), RuntimeError> {
    if cfg.args.is_empty() || cfg.args[0].is_empty() {
        return Err(invalid("no command to run"));
    }
    if !cfg.cwd.is_empty() && !cfg.cwd.starts_with('/') {
        return Err(invalid(format!(
            "working directory {:?} is not absolute",
            cfg.cwd
        )));
    }
    for m in &cfg.mounts {
        check_target(&m.target)?;
        if matches!(m.kind, MountKind::Bind | MountKind::Volume) && !m.source.exists() {
            return Err(invalid(format!(
                "mount source {} does not exist",
                m.source.display()
            )));
        }
    }
    for f in &cfg.files {
        check_target(&f.target)?;
        if f.mode > 0o777 {
            return Err(invalid(format!(
                "file {}: mode {:o} is not within 0777",
                f.target, f.mode
            )));
        }
    }
    if let Some(ns) = &cfg.netns {
        if !ns.exists() {
            return Err(invalid(format!(
                "network namespace {} does not exist",
                ns.display()
            )));
        }
    }
    if cfg.memory_bytes < 0 || cfg.nano_cpus < 0 || cfg.pids_limit < 0 {
        return Err(invalid("negative resource limit"));
    }
    if cfg.memory_bytes > 0 && cfg.memory_bytes < 6 * 1024 * 1024 {
        return Err(invalid("minimum memory limit allowed is 6MB"));
    }
    if cfg.nano_cpus > 0 && cfg.nano_cpus < 10_000_000 {
        return Err(invalid("minimum CPU limit allowed is 0.01"));
    }
    for (name, soft, hard) in &cfg.ulimits {
        rlimit_type(name)?;
        if soft > hard {
            return Err(invalid(format!(
                "ulimit {name}: soft limit {soft} above hard limit {hard}"
            )));
        }
    }
    capabilities(&cfg.cap_add, &cfg.cap_drop)?;
    Ok(())
}

fn check_target(t: &str) -> Result<(), RuntimeError> {
    if !t.starts_with('/') || t == "/" || t.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "mount target {t:?} must be an absolute path other than / without .."
        )));
    }
    Ok(())
}

fn normalize_cap(name: &str) -> Result<String, RuntimeError> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(invalid(format!("unknown capability {name:?}")))
    }
}

/// Docker's default capabilities with `add` and `drop` applied.
pub(crate) fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>, RuntimeError> {
    let add: Vec<String> = add
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = drop
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let has = |v: &[String], c: &str| v.iter().any(|x| x == c);
    let mut caps: Vec<String> = Vec::new();
    if has(&add, "ALL") {
        caps.extend(
            ALL_CAPS
                .iter()
                .filter(|c| !has(&drop, c))
                .map(|c| c.to_string()),
        );
    } else if has(&drop, "ALL") {
        caps.extend(add.iter().filter(|c| *c != "ALL").cloned());
    } else {
        caps.extend(
            DEFAULT_CAPS
                .iter()
                .filter(|c| !has(&drop, c))
                .map(|c| c.to_string()),
        );
        for c in &add {
            if !has(&caps, c) {
                caps.push(c.clone());
            }
        }
    }
    caps.dedup();
    Ok(caps)
}

fn to_oci_caps(names: &[String]) -> Result<LinuxCapabilities, RuntimeError> {
    let set: Capabilities = names
        .iter()
        .map(|n| {
            serde_json::from_value::<Capability>(serde_json::Value::String(n.clone()))
                .map_err(|_| invalid(format!("capability {n} unknown to the OCI spec")))
        })
        .collect::<Result<_, _>>()?;
    oci(LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .build())
}

fn rlimit_type(name: &str) -> Result<PosixRlimitType, RuntimeError> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("RLIMIT_").unwrap_or(&n);
    serde_json::from_value(serde_json::Value::String(format!("RLIMIT_{n}")))
        .map_err(|_| invalid(format!("unknown ulimit {name:?}")))
}

/// A signal given as "SIGTERM", "TERM", "term" or "15".
pub(crate) fn parse_signal(s: &str) -> Result<i32, RuntimeError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(invalid(format!("invalid signal {s:?}")));
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| invalid(format!("invalid signal {s:?}")))
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map(|(k, _)| k).unwrap_or(kv)
}

/// `base` with `over` applied (same key: replaced).
pub(crate) fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for kv in over {
        match out.iter_mut().find(|e| env_key(e) == env_key(kv)) {
            Some(e) => *e = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, RuntimeError> {
    oci(MountBuilder::default()
        .destination(PathBuf::from(dest))
        .typ(typ.to_string())
        .source(source.to_path_buf())
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build())
}

fn oci_user(u: &ResolvedUser) -> Result<User, RuntimeError> {
    let mut b = UserBuilder::default().uid(u.uid).gid(u.gid);
    if !u.additional_gids.is_empty() {
        b = b.additional_gids(u.additional_gids.clone());
    }
    oci(b.build())
}

/// Inputs of [`build`].
pub(crate) struct SpecInput<'a> {
    pub cfg: &'a ContainerConfig,
    pub bundle: &'a Path,
    pub hostname: &'a str,
    pub user: &'a ResolvedUser,
    pub init: Option<&'a InitPlan>,
    /// Pure cgroup v2 host.
    pub unified: bool,
    /// memory+swap can be limited.
    pub swap_accounting: bool,
}

/// The container's config.json.
pub(crate) fn build(inp: &SpecInput) -> Result<Spec, RuntimeError> {
    let cfg = inp.cfg;

    // Process.
    let mut args = cfg.args.clone();
    if let Some(plan) = inp.init {
        let mut v = plan.argv_prefix.clone();
        v.append(&mut args);
        args = v;
    }
    let mut env = cfg.env.clone();
    let mut defaults = Vec::new();
    if !env.iter().any(|e| env_key(e) == "PATH") {
        defaults.push(DEFAULT_PATH.to_string());
    }
    defaults.push(format!("HOSTNAME={}", inp.hostname));
    if cfg.tty {
        defaults.push("TERM=xterm".to_string());
    }
    defaults.push(format!("HOME={}", inp.user.home.as_deref().unwrap_or("/")));
    for d in defaults {
        if !env.iter().any(|e| env_key(e) == env_key(&d)) {
            env.push(d);
        }
    }
    let mut rlimits: Vec<PosixRlimit> = Vec::new();
    for (name, soft, hard) in &cfg.ulimits {
        rlimits.push(oci(PosixRlimitBuilder::default()
            .typ(rlimit_type(name)?)
            .soft(*soft)
            .hard(*hard)
            .build())?);
    }
    let mut process = Process::default();
    process
        .set_terminal(Some(cfg.tty))
        .set_user(oci_user(inp.user)?)
        .set_args(Some(args))
        .set_env(Some(env))
        .set_cwd(PathBuf::from(if cfg.cwd.is_empty() {
            "/"
        } else {
            &cfg.cwd
        }))
        .set_capabilities(Some(to_oci_caps(&capabilities(
            &cfg.cap_add,
            &cfg.cap_drop,
        )?)?))
        .set_rlimits(if rlimits.is_empty() {
            None
        } else {
            Some(rlimits)
        })
        .set_no_new_privileges(Some(false));

    // Mounts.
    let mut mounts = vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            Path::new("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
    ];
    let user_targets: Vec<&str> = cfg
        .mounts
        .iter()
        .map(|m| m.target.trim_end_matches('/'))
        .collect();
    for (file, dest) in [
        (HOSTNAME_FILE, "/etc/hostname"),
        (HOSTS_FILE, "/etc/hosts"),
        (RESOLV_FILE, "/etc/resolv.conf"),
    ] {
        if user_targets.contains(&dest) {
            continue;
        }
        mounts.push(mount(
            dest,
            "bind",
            &inp.bundle.join(file),
            &["rbind", "rprivate", "rw"],
        )?);
    }
    for m in &cfg.mounts {
        let rw = if m.read_only { "ro" } else { "rw" };
        match m.kind {
            MountKind::Bind | MountKind::Volume => {
                mounts.push(mount(
                    &m.target,
                    "bind",
                    &m.source,
                    &["rbind", "rprivate", rw],
                )?);
            }
            MountKind::Tmpfs => {
                let mut opts = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "noexec".to_string(),
                    rw.to_string(),
                ];
                if m.tmpfs_size > 0 {
                    opts.push(format!("size={}", m.tmpfs_size));
                }
                opts.push(format!(
                    "mode={:o}",
                    if m.tmpfs_mode == 0 {
                        0o1777
                    } else {
                        m.tmpfs_mode & 0o7777
                    }
                ));
                let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
                mounts.push(mount(&m.target, "tmpfs", Path::new("tmpfs"), &refs)?);
            }
        }
    }
    // Secret and config files, read-only from the bundle's tmpfs (files.rs).
    for (n, f) in cfg.files.iter().enumerate() {
        mounts.push(mount(
            &f.target,
            "bind",
            &super::files::source(inp.bundle, n),
            &["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"],
        )?);
    }
    if let Some(plan) = inp.init {
        for (src, dest) in &plan.mounts {
            mounts.push(mount(
                dest,
                "bind",
                src,
                &["bind", "ro", "nosuid", "nodev"],
            )?);
        }
    }

    // Linux.
    let mut namespaces = Vec::new();
    for t in [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ] {
        namespaces.push(oci(LinuxNamespaceBuilder::default().typ(t).build())?);
    }
    let mut net = LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network);
    if let Some(p) = &cfg.netns {
        net = net.path(p.clone());
    }
    namespaces.push(oci(net.build())?);
    if inp.unified {
        namespaces.push(oci(LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Cgroup)
            .build())?);
    }

    let mut devices = vec![oci(LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build())?];
    for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
        devices.push(oci(LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .minor(minor)
            .access("rwm")
            .build())?);
    }
    devices.push(oci(LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .typ(LinuxDeviceType::C)
        .major(10)
        .minor(229)
        .access("rwm")
        .build())?);
    let mut resources = LinuxResourcesBuilder::default().devices(devices);
    if cfg.memory_bytes > 0 {
        let mut mem = LinuxMemoryBuilder::default().limit(cfg.memory_bytes);
        if inp.swap_accounting {
            mem = mem.swap(cfg.memory_bytes);
        }
        resources = resources.memory(oci(mem.build())?);
    }
    if cfg.nano_cpus > 0 {
        let quota = (cfg.nano_cpus as i128 * CPU_PERIOD as i128 / 1_000_000_000) as i64;
        resources = resources.cpu(oci(LinuxCpuBuilder::default()
            .quota(quota.max(1000))
            .period(CPU_PERIOD)
            .build())?);
    }
    if cfg.pids_limit > 0 {
        resources = resources.pids(oci(LinuxPidsBuilder::default()
            .limit(cfg.pids_limit)
            .build())?);
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroups_path(&cfg.id)))
        .resources(oci(resources.build())?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
    if !cfg.sysctls.is_empty() {
        linux = linux.sysctl(cfg.sysctls.clone());
    }
    let linux = oci(linux.build())?;

    let mut root = Root::default();
    root.set_path(inp.bundle.join(super::ROOTFS))
        .set_readonly(Some(cfg.read_only_rootfs));

    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string())
        .set_root(Some(root))
        .set_mounts(Some(mounts))
        .set_process(Some(process))
        .set_hostname(Some(inp.hostname.to_string()))
        .set_annotations(if cfg.labels.is_empty() {
            None
        } else {
            Some(cfg.labels.clone())
        })
        .set_linux(Some(linux));
    Ok(spec)
}

/// The process.json of an exec: the container's process settings
/// (capabilities, user, environment, cwd) with the exec's own applied.
pub(crate) fn exec_process(
    container: &Spec,
    p: &ExecConfig,
    user: Option<&ResolvedUser>,
) -> Result<Process, RuntimeError> {
    if p.args.is_empty() || p.args[0].is_empty() {
        return Err(invalid("no command to run"));
    }
    if !p.cwd.is_empty() && !p.cwd.starts_with('/') {
        return Err(invalid(format!(
            "working directory {:?} is not absolute",
            p.cwd
        )));
    }
    let base = container.process().clone().unwrap_or_default();
    let base_env: Vec<String> = base
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        // TERM comes from the exec's tty setting, not the container's.
        .filter(|e| env_key(e) != "TERM")
        .collect();
    let mut env = merge_env(&base_env, &p.env);
    if p.tty && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }
    let mut process = Process::default();
    process
        .set_terminal(Some(p.tty))
        .set_user(match user {
            Some(u) => oci_user(u)?,
            None => base.user().clone(),
        })
        .set_args(Some(p.args.clone()))
        .set_env(Some(env))
        .set_cwd(if p.cwd.is_empty() {
            base.cwd().clone()
        } else {
            PathBuf::from(&p.cwd)
        })
        .set_capabilities(base.capabilities().clone())
        .set_rlimits(base.rlimits().clone())
        .set_no_new_privileges(base.no_new_privileges());
    Ok(process)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn caps() {
        let d = capabilities(&[], &[]).expect("default");
        assert_eq!(d.len(), 14);
        let c = capabilities(&["NET_ADMIN".into()], &["cap_chown".into()]).expect("add/drop");
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        let all = capabilities(&["ALL".into()], &["SYS_ADMIN".into()]).expect("all");
        assert_eq!(all.len(), ALL_CAPS.len() - 1);
        let none = capabilities(&["KILL".into()], &["ALL".into()]).expect("drop all");
        assert_eq!(none, vec!["CAP_KILL".to_string()]);
        assert!(capabilities(&["NOPE".into()], &[]).is_err());
        to_oci_caps(&all).expect("every name is known to oci-spec");
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").ok(), Some(15));
        assert_eq!(parse_signal("term").ok(), Some(15));
        assert_eq!(parse_signal("9").ok(), Some(9));
        assert_eq!(parse_signal("SIGUSR1").ok(), Some(10));
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn ulimits_and_env() {
        assert_eq!(
            rlimit_type("nofile").ok(),
            Some(PosixRlimitType::RlimitNofile)
        );
        assert!(rlimit_type("bogus").is_err());
        let e = merge_env(&["A=1".into(), "B=2".into()], &["B=3".into(), "C=4".into()]);
        assert_eq!(e, vec!["A=1", "B=3", "C=4"]);
    }
}
