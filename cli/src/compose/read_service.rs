//! One service of a Compose file into a [`Service`]: the keys Swarm honours,
//! secrets and configs in both syntaxes, `env_file:`, healthcheck, networks,
//! ulimits and depends_on (ports, volumes and `deploy:` in their own
//! modules). Keys that cannot apply to a cluster are noted for the warning;
//! unknown keys are errors.

use indexmap::IndexMap;

use super::envfile;
use super::model::*;
use super::read::Reader;
use super::read_deploy::deploy;
use super::read_ports::port;
use super::read_volumes::volume;
use super::value::{join, Value};

/// Service keys read here.
const KNOWN: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "healthcheck",
    "hostname",
    "user",
    "working_dir",
    "ports",
    "networks",
    "volumes",
    "tmpfs",
    "secrets",
    "configs",
    "init",
    "read_only",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "ulimits",
    "cap_add",
    "cap_drop",
    "dns",
    "dns_search",
    "dns_opt",
    "extra_hosts",
    "labels",
    "logging",
    "tty",
    "stdin_open",
    "deploy",
    "depends_on",
    "restart",
];

/// Keys that cannot apply to a swarm service: one warning, as Docker.
const IGNORED: &[&str] = &[
    "build",
    "cgroup_parent",
    "cgroupns_mode",
    "container_name",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "security_opt",
    "shm_size",
    "userns_mode",
    "expose",
    "profiles",
    "pull_policy",
    "platform",
    "isolation",
    "oom_score_adj",
    "oom_kill_disable",
    "cpu_shares",
    "cpu_quota",
    "cpuset",
    "cpus",
    "mem_limit",
    "memswap_limit",
    "mem_reservation",
    "blkio_config",
    "uts",
    "volumes_from",
    "scale",
    "runtime",
    "storage_opt",
    "group_add",
];

pub fn service(r: &mut Reader, name: &str, v: &Value) -> Option<Service> {
    let path = join("services", name);
    let m = r.map(&path, v)?;
    r.check_keys(&path, m, KNOWN, IGNORED);
    let at = |k: &str| join(&path, k);
    let mut s = Service::default();
    match m.get("image") {
        Some(v) => s.image = r.string(&at("image"), v).unwrap_or_default(),
        None => r.missing(
            &path,
            "missing image (rswarm deploys images; build is not supported)",
        ),
    }
    if s.image.is_empty() && m.contains_key("image") {
        r.error(&at("image"), "must not be empty");
    }
    if let Some(v) = m.get("command") {
        s.command = r.command(&at("command"), v);
    }
    if let Some(v) = m.get("entrypoint") {
        s.entrypoint = r.command(&at("entrypoint"), v);
    }
    if let Some(v) = m.get("env_file") {
        for file in r.one_or_many(&at("env_file"), v) {
            let full = r.host_path(&file);
            match std::fs::read_to_string(&full) {
                Ok(text) => match envfile::parse(&file, &text, r.lookup) {
                    Ok(vars) => s.environment.extend(vars),
                    Err(e) => r.error(&at("env_file"), e),
                },
                Err(e) => r.error(&at("env_file"), format!("cannot read {full}: {e}")),
            }
        }
    }
    if let Some(v) = m.get("environment") {
        let env_path = at("environment");
        if let Some(env) = r.map(&env_path, v).cloned() {
            for (k, value) in env {
                let value = match value {
                    // A bare name takes the value from the environment, or is left out.
                    Value::Null => match (r.lookup)(&k) {
                        Some(v) => v,
                        None => continue,
                    },
                    other => r.string(&join(&env_path, &k), &other).unwrap_or_default(),
                };
                s.environment.insert(k, value);
            }
        }
    }
    if let Some(v) = m.get("healthcheck") {
        s.healthcheck = healthcheck(r, &at("healthcheck"), v);
    }
    s.hostname = m.get("hostname").and_then(|v| r.string(&at("hostname"), v));
    s.user = m.get("user").and_then(|v| r.string(&at("user"), v));
    s.working_dir = m
        .get("working_dir")
        .and_then(|v| r.string(&at("working_dir"), v));
    if let Some(Value::Seq(items)) = m.get("ports") {
        for (i, item) in items.iter().enumerate() {
            s.ports
                .extend(port(r, &format!("{}[{i}]", at("ports")), item));
        }
    } else if let Some(other) = m.get("ports") {
        r.error(
            &at("ports"),
            format!("must be a list, not {}", other.kind()),
        );
    }
    if let Some(v) = m.get("networks") {
        s.networks = networks(r, &at("networks"), v);
    }
    if let Some(Value::Seq(items)) = m.get("volumes") {
        for (i, item) in items.iter().enumerate() {
            if let Some(mount) = volume(r, &format!("{}[{i}]", at("volumes")), item) {
                s.volumes.push(mount);
            }
        }
    } else if let Some(other) = m.get("volumes") {
        r.error(
            &at("volumes"),
            format!("must be a list, not {}", other.kind()),
        );
    }
    if let Some(v) = m.get("tmpfs") {
        for (i, t) in r.one_or_many(&at("tmpfs"), v).into_iter().enumerate() {
            // `/path[:size=64m,mode=1777]`
            let (target, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
            let mut mount = Mount {
                kind: MountKind::Tmpfs,
                source: None,
                target: target.to_string(),
                read_only: false,
                nocopy: false,
                propagation: None,
                tmpfs_size: None,
                tmpfs_mode: None,
            };
            for opt in opts.split(',').filter(|o| !o.is_empty()) {
                match opt.split_once('=') {
                    Some(("size", size)) => mount.tmpfs_size = Some(size.to_string()),
                    Some(("mode", mode)) => {
                        mount.tmpfs_mode = octal(r, &format!("{}[{i}]", at("tmpfs")), mode)
                    }
                    _ => r.error(
                        &format!("{}[{i}]", at("tmpfs")),
                        format!("unknown tmpfs option {opt:?} (size=, mode=)"),
                    ),
                }
            }
            s.volumes.push(mount);
        }
    }
    if let Some(v) = m.get("secrets") {
        s.secrets = file_refs(r, &at("secrets"), v);
    }
    if let Some(v) = m.get("configs") {
        s.configs = file_refs(r, &at("configs"), v);
    }
    s.init = m.get("init").and_then(|v| r.bool(&at("init"), v));
    s.read_only = m
        .get("read_only")
        .and_then(|v| r.bool(&at("read_only"), v))
        .unwrap_or(false);
    s.tty = m
        .get("tty")
        .and_then(|v| r.bool(&at("tty"), v))
        .unwrap_or(false);
    s.stdin_open = m
        .get("stdin_open")
        .and_then(|v| r.bool(&at("stdin_open"), v))
        .unwrap_or(false);
    s.stop_grace_period = m
        .get("stop_grace_period")
        .and_then(|v| r.string(&at("stop_grace_period"), v));
    s.stop_signal = m
        .get("stop_signal")
        .and_then(|v| r.string(&at("stop_signal"), v));
    if let Some(v) = m.get("sysctls") {
        s.sysctls = r.string_map(&at("sysctls"), v);
    }
    if let Some(v) = m.get("ulimits") {
        s.ulimits = ulimits(r, &at("ulimits"), v);
    }
    for (key, out) in [
        ("cap_add", &mut s.cap_add),
        ("cap_drop", &mut s.cap_drop),
        ("dns", &mut s.dns),
        ("dns_search", &mut s.dns_search),
        ("dns_opt", &mut s.dns_opt),
    ] {
        if let Some(v) = m.get(key) {
            *out = r.one_or_many(&at(key), v);
        }
    }
    if let Some(v) = m.get("extra_hosts") {
        for (host, ip) in r.string_map(&at("extra_hosts"), v) {
            if ip.is_empty() {
                r.error(
                    &at("extra_hosts"),
                    format!("invalid extra host {host:?} (expected host:ip)"),
                );
            } else {
                s.extra_hosts.push((host, ip));
            }
        }
    }
    if let Some(v) = m.get("labels") {
        s.labels = r.string_map(&at("labels"), v);
    }
    if let Some(v) = m.get("logging") {
        let lpath = at("logging");
        if let Some(l) = r.map(&lpath, v) {
            r.check_keys(&lpath, l, &["driver", "options"], &[]);
            s.logging = Some(Logging {
                driver: l
                    .get("driver")
                    .and_then(|v| r.string(&join(&lpath, "driver"), v)),
                options: l
                    .get("options")
                    .map(|v| r.string_map(&join(&lpath, "options"), v))
                    .unwrap_or_default(),
            });
        }
    }
    if let Some(v) = m.get("depends_on") {
        s.depends_on = depends_on(r, &at("depends_on"), v);
    }
    if let Some(v) = m.get("deploy") {
        s.deploy = deploy(r, &at("deploy"), v);
    }
    if let Some(v) = m.get("restart") {
        let policy = r.string(&at("restart"), v);
        if s.deploy.restart_policy.is_some() {
            // deploy.restart_policy wins; `restart` is ignored, as in Docker.
            if !r.ignored.iter().any(|k| k == "restart") {
                r.ignored.push("restart".into());
            }
        } else if let Some(p) = policy {
            s.deploy.restart_policy = restart_from_compose(r, &at("restart"), &p);
        }
    }
    Some(s)
}

/// `restart: always|unless-stopped|on-failure[:N]|no` as a restart policy.
fn restart_from_compose(r: &mut Reader, path: &str, p: &str) -> Option<RestartPolicy> {
    let (condition, attempts) = match p.split_once(':') {
        Some(("on-failure", n)) => match n.parse::<u64>() {
            Ok(n) => ("on-failure", Some(n)),
            Err(_) => {
                r.error(path, format!("invalid restart policy {p:?}"));
                return None;
            }
        },
        _ => match p {
            "no" => ("none", None),
            "always" | "unless-stopped" => ("any", None),
            "on-failure" => ("on-failure", None),
            _ => {
                r.error(path, format!("invalid restart policy {p:?} (expected no, always, unless-stopped or on-failure[:N])"));
                return None;
            }
        },
    };
    Some(RestartPolicy {
        condition: Some(condition.into()),
        max_attempts: attempts,
        ..Default::default()
    })
}

fn healthcheck(r: &mut Reader, path: &str, v: &Value) -> Option<Healthcheck> {
    let m = r.map(path, v)?;
    r.check_keys(
        path,
        m,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        ],
        &[],
    );
    let at = |k: &str| join(path, k);
    let mut h = Healthcheck::default();
    match m.get("test") {
        Some(Value::Seq(_)) => {
            h.test = r.strings(&at("test"), &m["test"]);
            if let Some(first) = h.test.first() {
                if !["NONE", "CMD", "CMD-SHELL"].contains(&first.as_str()) {
                    r.error(
                        &at("test"),
                        format!("must start with CMD, CMD-SHELL or NONE, not {first:?}"),
                    );
                }
            }
        }
        Some(other) => {
            if let Some(cmd) = r.string(&at("test"), other) {
                h.test = vec!["CMD-SHELL".into(), cmd];
            }
        }
        None => {}
    }
    h.interval = m.get("interval").and_then(|v| r.string(&at("interval"), v));
    h.timeout = m.get("timeout").and_then(|v| r.string(&at("timeout"), v));
    h.start_period = m
        .get("start_period")
        .and_then(|v| r.string(&at("start_period"), v));
    h.start_interval = m
        .get("start_interval")
        .and_then(|v| r.string(&at("start_interval"), v));
    h.retries = m.get("retries").and_then(|v| r.uint(&at("retries"), v));
    h.disable = m
        .get("disable")
        .and_then(|v| r.bool(&at("disable"), v))
        .unwrap_or(false);
    if h.disable && !h.test.is_empty() && h.test != ["NONE"] {
        r.error(path, "disable: true and a test cannot go together");
    }
    Some(h)
}

fn networks(r: &mut Reader, path: &str, v: &Value) -> IndexMap<String, ServiceNetwork> {
    let mut out = IndexMap::new();
    let Some(m) = r.map(path, v) else { return out };
    for (name, item) in m {
        let npath = join(path, name);
        let mut n = ServiceNetwork::default();
        if let Value::Map(fields) = item {
            r.check_keys(
                &npath,
                fields,
                &["aliases"],
                &["ipv4_address", "ipv6_address", "priority", "link_local_ips"],
            );
            if let Some(a) = fields.get("aliases") {
                n.aliases = r.strings(&join(&npath, "aliases"), a);
            }
        } else if !matches!(item, Value::Null) {
            r.error(
                &npath,
                format!("must be a mapping or empty, not {}", item.kind()),
            );
        }
        out.insert(name.clone(), n);
    }
    out
}

/// File modes are octal in Compose files (`0440`, `440`).
pub(super) fn octal(r: &mut Reader, path: &str, text: &str) -> Option<u32> {
    let digits = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Some(m),
        _ => {
            r.error(
                path,
                format!("invalid file mode {text:?} (octal, e.g. 0440)"),
            );
            None
        }
    }
}

/// A secret's or config's `mode:` as Docker reads it: a YAML number is the
/// mode itself (`0o440`, or 288 written in decimal); `0440` (which YAML 1.2
/// reads as a string) and any other text are octal digits.
fn file_mode(r: &mut Reader, path: &str, v: &Value) -> Option<u32> {
    match v {
        Value::Int(n) => match u32::try_from(*n) {
            Ok(m) if m <= 0o7777 => Some(m),
            _ => {
                r.error(path, format!("invalid file mode {n} (octal, e.g. 0440)"));
                None
            }
        },
        other => {
            let text = r.string(path, other)?;
            octal(r, path, &text)
        }
    }
}

fn file_refs(r: &mut Reader, path: &str, v: &Value) -> Vec<FileRef> {
    let Value::Seq(items) = v else {
        r.error(path, format!("must be a list, not {}", v.kind()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        match item {
            Value::Str(source) => out.push(FileRef {
                source: source.clone(),
                target: None,
                uid: None,
                gid: None,
                mode: None,
            }),
            Value::Map(m) => {
                r.check_keys(&ipath, m, &["source", "target", "uid", "gid", "mode"], &[]);
                let Some(source) = m
                    .get("source")
                    .and_then(|v| r.string(&join(&ipath, "source"), v))
                else {
                    if !m.contains_key("source") {
                        r.error(&ipath, "missing source");
                    }
                    continue;
                };
                let mode = m
                    .get("mode")
                    .and_then(|v| file_mode(r, &join(&ipath, "mode"), v));
                out.push(FileRef {
                    source,
                    target: m
                        .get("target")
                        .and_then(|v| r.string(&join(&ipath, "target"), v)),
                    uid: m.get("uid").and_then(|v| r.string(&join(&ipath, "uid"), v)),
                    gid: m.get("gid").and_then(|v| r.string(&join(&ipath, "gid"), v)),
                    mode,
                });
            }
            other => r.error(
                &ipath,
                format!("must be a name or a mapping, not {}", other.kind()),
            ),
        }
    }
    out
}

fn ulimits(r: &mut Reader, path: &str, v: &Value) -> IndexMap<String, Ulimit> {
    let mut out = IndexMap::new();
    let Some(m) = r.map(path, v) else { return out };
    for (name, item) in m {
        let upath = join(path, name);
        let limit = match item {
            Value::Map(l) => {
                r.check_keys(&upath, l, &["soft", "hard"], &[]);
                let soft = l.get("soft").and_then(|v| r.int(&join(&upath, "soft"), v));
                let hard = l.get("hard").and_then(|v| r.int(&join(&upath, "hard"), v));
                match (soft, hard) {
                    (Some(soft), Some(hard)) => Ulimit { soft, hard },
                    _ => {
                        r.error(&upath, "needs both soft and hard");
                        continue;
                    }
                }
            }
            other => match r.int(&upath, other) {
                Some(n) => Ulimit { soft: n, hard: n },
                None => continue,
            },
        };
        out.insert(name.clone(), limit);
    }
    out
}

fn depends_on(r: &mut Reader, path: &str, v: &Value) -> IndexMap<String, Dependency> {
    let mut out = IndexMap::new();
    let Some(m) = r.map(path, v) else { return out };
    for (name, item) in m {
        let dpath = join(path, name);
        let mut dep = Dependency {
            condition: "service_started".into(),
            restart: false,
            required: true,
        };
        match item {
            Value::Map(d) => {
                r.check_keys(&dpath, d, &["condition", "restart", "required"], &[]);
                if let Some(c) = d.get("condition").and_then(|c| {
                    r.choice(
                        &join(&dpath, "condition"),
                        c,
                        &[
                            "service_started",
                            "service_healthy",
                            "service_completed_successfully",
                        ],
                    )
                }) {
                    dep.condition = c;
                }
                if let Some(b) = d
                    .get("restart")
                    .and_then(|b| r.bool(&join(&dpath, "restart"), b))
                {
                    dep.restart = b;
                }
                if let Some(b) = d
                    .get("required")
                    .and_then(|b| r.bool(&join(&dpath, "required"), b))
                {
                    dep.required = b;
                }
            }
            Value::Null => {}
            other => {
                r.error(&dpath, format!("must be a mapping, not {}", other.kind()));
                continue;
            }
        }
        out.insert(name.clone(), dep);
    }
    out
}
