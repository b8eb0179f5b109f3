//! A [`Project`] back into a Compose tree, every entry in its long form
//! (ports, volumes, secrets, configs, depends_on): what `stack config`
//! prints, so a user sees exactly what the stack will be made of.

use indexmap::IndexMap;

use super::model::*;
use super::value::Value;

/// Builds a mapping, leaving out empty entries.
#[derive(Default)]
struct Map(IndexMap<String, Value>);

impl Map {
    fn put(mut self, key: &str, v: Value) -> Self {
        let empty = match &v {
            Value::Null => true,
            Value::Seq(s) => s.is_empty(),
            Value::Map(m) => m.is_empty(),
            _ => false,
        };
        if !empty {
            self.0.insert(key.to_string(), v);
        }
        self
    }
    fn opt_str(self, key: &str, v: &Option<String>) -> Self {
        self.put(key, v.clone().map(Value::Str).unwrap_or(Value::Null))
    }
    fn opt_uint(self, key: &str, v: Option<u64>) -> Self {
        self.put(key, v.map(|n| Value::Int(n as i64)).unwrap_or(Value::Null))
    }
    fn flag(self, key: &str, v: bool) -> Self {
        self.put(key, if v { Value::Bool(true) } else { Value::Null })
    }
    fn done(self) -> Value {
        Value::Map(self.0)
    }
}

fn strs(v: &[String]) -> Value {
    Value::Seq(v.iter().cloned().map(Value::Str).collect())
}

fn str_map(m: &IndexMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}

fn mode(m: Option<u32>) -> Value {
    m.map(|m| Value::Str(format!("0{m:o}")))
        .unwrap_or(Value::Null)
}

pub fn project(p: &Project) -> Value {
    Map::default()
        .put(
            "services",
            Value::Map(
                p.services
                    .iter()
                    .map(|(k, s)| (k.clone(), service(s)))
                    .collect(),
            ),
        )
        .put(
            "networks",
            Value::Map(
                p.networks
                    .iter()
                    .map(|(k, n)| (k.clone(), network(n)))
                    .collect(),
            ),
        )
        .put(
            "volumes",
            Value::Map(
                p.volumes
                    .iter()
                    .map(|(k, v)| (k.clone(), volume(v)))
                    .collect(),
            ),
        )
        .put(
            "secrets",
            Value::Map(
                p.secrets
                    .iter()
                    .map(|(k, o)| (k.clone(), file_object(o)))
                    .collect(),
            ),
        )
        .put(
            "configs",
            Value::Map(
                p.configs
                    .iter()
                    .map(|(k, o)| (k.clone(), file_object(o)))
                    .collect(),
            ),
        )
        .done()
}

fn service(s: &Service) -> Value {
    Map::default()
        .put("image", Value::Str(s.image.clone()))
        .put(
            "command",
            s.command.as_deref().map(strs).unwrap_or(Value::Null),
        )
        .put(
            "entrypoint",
            s.entrypoint.as_deref().map(strs).unwrap_or(Value::Null),
        )
        .put("environment", str_map(&s.environment))
        .put(
            "healthcheck",
            s.healthcheck
                .as_ref()
                .map(healthcheck)
                .unwrap_or(Value::Null),
        )
        .opt_str("hostname", &s.hostname)
        .opt_str("user", &s.user)
        .opt_str("working_dir", &s.working_dir)
        .put("ports", Value::Seq(s.ports.iter().map(port).collect()))
        .put(
            "networks",
            Value::Map(
                s.networks
                    .iter()
                    .map(|(k, n)| {
                        (
                            k.clone(),
                            Map::default().put("aliases", strs(&n.aliases)).done(),
                        )
                    })
                    .collect(),
            ),
        )
        .put("volumes", Value::Seq(s.volumes.iter().map(mount).collect()))
        .put(
            "secrets",
            Value::Seq(s.secrets.iter().map(file_ref).collect()),
        )
        .put(
            "configs",
            Value::Seq(s.configs.iter().map(file_ref).collect()),
        )
        .put("init", s.init.map(Value::Bool).unwrap_or(Value::Null))
        .flag("read_only", s.read_only)
        .opt_str("stop_grace_period", &s.stop_grace_period)
        .opt_str("stop_signal", &s.stop_signal)
        .put("sysctls", str_map(&s.sysctls))
        .put(
            "ulimits",
            Value::Map(
                s.ulimits
                    .iter()
                    .map(|(k, u)| {
                        let m = Map::default()
                            .put("soft", Value::Int(u.soft))
                            .put("hard", Value::Int(u.hard));
                        (k.clone(), m.done())
                    })
                    .collect(),
            ),
        )
        .put("cap_add", strs(&s.cap_add))
        .put("cap_drop", strs(&s.cap_drop))
        .put("dns", strs(&s.dns))
        .put("dns_search", strs(&s.dns_search))
        .put("dns_opt", strs(&s.dns_opt))
        .put(
            "extra_hosts",
            Value::Seq(
                s.extra_hosts
                    .iter()
                    .map(|(h, ip)| Value::Str(format!("{h}:{ip}")))
                    .collect(),
            ),
        )
        .put("labels", str_map(&s.labels))
        .put(
            "logging",
            s.logging
                .as_ref()
                .map(|l| {
                    Map::default()
                        .opt_str("driver", &l.driver)
                        .put("options", str_map(&l.options))
                        .done()
                })
                .unwrap_or(Value::Null),
        )
        .flag("tty", s.tty)
        .flag("stdin_open", s.stdin_open)
        .put("deploy", deploy(&s.deploy))
        .put(
            "depends_on",
            Value::Map(
                s.depends_on
                    .iter()
                    .map(|(k, d)| {
                        (
                            k.clone(),
                            Map::default()
                                .put("condition", Value::Str(d.condition.clone()))
                                .flag("restart", d.restart)
                                .put("required", Value::Bool(d.required))
                                .done(),
                        )
                    })
                    .collect(),
            ),
        )
        .done()
}

fn healthcheck(h: &Healthcheck) -> Value {
    Map::default()
        .put("test", strs(&h.test))
        .opt_str("interval", &h.interval)
        .opt_str("timeout", &h.timeout)
        .opt_str("start_period", &h.start_period)
        .opt_str("start_interval", &h.start_interval)
        .opt_uint("retries", h.retries)
        .flag("disable", h.disable)
        .done()
}

fn port(p: &Port) -> Value {
    Map::default()
        .put("target", Value::Int(p.target.into()))
        .put(
            "published",
            p.published
                .map(|n| Value::Int(n.into()))
                .unwrap_or(Value::Null),
        )
        .put("protocol", Value::Str(p.protocol.clone()))
        .put("mode", Value::Str(p.mode.clone()))
        .done()
}

fn mount(m: &Mount) -> Value {
    let kind = match m.kind {
        MountKind::Volume => "volume",
        MountKind::Bind => "bind",
        MountKind::Tmpfs => "tmpfs",
    };
    Map::default()
        .put("type", Value::Str(kind.into()))
        .opt_str("source", &m.source)
        .put("target", Value::Str(m.target.clone()))
        .flag("read_only", m.read_only)
        .put("volume", Map::default().flag("nocopy", m.nocopy).done())
        .put(
            "bind",
            Map::default().opt_str("propagation", &m.propagation).done(),
        )
        .put(
            "tmpfs",
            Map::default()
                .opt_str("size", &m.tmpfs_size)
                .put("mode", mode(m.tmpfs_mode))
                .done(),
        )
        .done()
}

fn file_ref(f: &FileRef) -> Value {
    Map::default()
        .put("source", Value::Str(f.source.clone()))
        .opt_str("target", &f.target)
        .opt_str("uid", &f.uid)
        .opt_str("gid", &f.gid)
        .put("mode", mode(f.mode))
        .done()
}

fn resources(r: &Resources) -> Value {
    Map::default()
        .opt_str("cpus", &r.cpus)
        .opt_str("memory", &r.memory)
        .put("pids", r.pids.map(Value::Int).unwrap_or(Value::Null))
        .done()
}

fn update_config(u: &UpdateConfig) -> Value {
    Map::default()
        .opt_uint("parallelism", u.parallelism)
        .opt_str("delay", &u.delay)
        .opt_str("failure_action", &u.failure_action)
        .opt_str("monitor", &u.monitor)
        .put(
            "max_failure_ratio",
            u.max_failure_ratio.map(Value::Float).unwrap_or(Value::Null),
        )
        .opt_str("order", &u.order)
        .done()
}

fn deploy(d: &Deploy) -> Value {
    let placement = Map::default()
        .put("constraints", strs(&d.constraints))
        .put(
            "preferences",
            Value::Seq(
                d.preferences
                    .iter()
                    .map(|p| Map::default().put("spread", Value::Str(p.clone())).done())
                    .collect(),
            ),
        )
        .opt_uint("max_replicas_per_node", d.max_replicas_per_node)
        .done();
    Map::default()
        .opt_str("mode", &d.mode)
        .opt_uint("replicas", d.replicas)
        .opt_str("endpoint_mode", &d.endpoint_mode)
        .put("labels", str_map(&d.labels))
        .put("placement", placement)
        .put(
            "resources",
            Map::default()
                .put("limits", resources(&d.limits))
                .put("reservations", resources(&d.reservations))
                .done(),
        )
        .put(
            "restart_policy",
            d.restart_policy
                .as_ref()
                .map(|r| {
                    Map::default()
                        .opt_str("condition", &r.condition)
                        .opt_str("delay", &r.delay)
                        .opt_uint("max_attempts", r.max_attempts)
                        .opt_str("window", &r.window)
                        .done()
                })
                .unwrap_or(Value::Null),
        )
        .put(
            "update_config",
            d.update_config
                .as_ref()
                .map(update_config)
                .unwrap_or(Value::Null),
        )
        .put(
            "rollback_config",
            d.rollback_config
                .as_ref()
                .map(update_config)
                .unwrap_or(Value::Null),
        )
        .done()
}

fn external(e: &Option<String>) -> Value {
    e.as_ref().map(|_| Value::Bool(true)).unwrap_or(Value::Null)
}

fn network(n: &Network) -> Value {
    Map::default()
        .opt_str("name", &n.name)
        .put("external", external(&n.external))
        .opt_str("driver", &n.driver)
        .put("driver_opts", str_map(&n.driver_opts))
        .flag("attachable", n.attachable)
        .flag("internal", n.internal)
        .put("labels", str_map(&n.labels))
        .put(
            "ipam",
            Map::default()
                .put(
                    "config",
                    Value::Seq(
                        n.subnets
                            .iter()
                            .map(|s| {
                                Map::default()
                                    .put("subnet", Value::Str(s.subnet.clone()))
                                    .opt_str("gateway", &s.gateway)
                                    .done()
                            })
                            .collect(),
                    ),
                )
                .done(),
        )
        .done()
}

fn volume(v: &Volume) -> Value {
    Map::default()
        .opt_str("name", &v.name)
        .put("external", external(&v.external))
        .opt_str("driver", &v.driver)
        .put("driver_opts", str_map(&v.driver_opts))
        .put("labels", str_map(&v.labels))
        .done()
}

fn file_object(o: &FileObject) -> Value {
    Map::default()
        .opt_str("name", &o.name)
        .put("external", external(&o.external))
        .opt_str("file", &o.file)
        .opt_str("environment", &o.environment)
        .opt_str("content", &o.content)
        .put("labels", str_map(&o.labels))
        .done()
}
