//! `service inspect` as JSON: a service in Docker's shape (field names,
//! nesting, units and omitted-when-empty rules), so `--format
//! '{{.Spec.Name}}'` and `jq` paths written for Docker carry over.

use std::collections::{BTreeMap, HashMap};

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{
    ContainerSpec, EndpointSpec, HealthConfig, Mount, PortConfig, ResourceLimits, Service,
    ServiceSpec, TaskSpec, UpdateConfig,
};
use serde_json::{Map, Number, Value};

use crate::format::humanize::rfc3339_nano;
use crate::format::tasks::protocol_word;
use crate::servicespec::mounts::mount_type_word;
use crate::servicespec::policy::{
    endpoint_mode_word, failure_action_word, restart_condition_word, update_order_word,
};

/// Docker's default stop grace period, shown when the spec leaves it unset.
const DEFAULT_STOP_GRACE_PERIOD_NS: i64 = 10_000_000_000;

fn obj(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn put_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.to_string(), value.into());
    }
}

fn put_int(map: &mut Map<String, Value>, key: &str, value: i64) {
    if value != 0 {
        map.insert(key.to_string(), value.into());
    }
}

fn put_strings(map: &mut Map<String, Value>, key: &str, values: &[String]) {
    if !values.is_empty() {
        map.insert(key.to_string(), values.to_vec().into());
    }
}

/// Labels as a JSON object with sorted keys (Go's `encoding/json` order).
fn labels_json(labels: &HashMap<String, String>) -> Value {
    let sorted: BTreeMap<&String, &String> = labels.iter().collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A float32 as Go's `encoding/json` writes it: shortest digits, `0` not `0.0`.
fn float32_json(value: f32) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return Value::from(value as i64);
    }
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn port_json(p: &PortConfig) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "Name", &p.name);
    m.insert("Protocol".into(), protocol_word(p.protocol()).into());
    put_int(&mut m, "TargetPort", i64::from(p.target_port));
    put_int(&mut m, "PublishedPort", i64::from(p.published_port));
    let mode = match p.publish_mode() {
        rswarm_proto::types::port_config::PublishMode::Ingress => "ingress",
        rswarm_proto::types::port_config::PublishMode::Host => "host",
    };
    m.insert("PublishMode".into(), mode.into());
    Value::Object(m)
}

fn endpoint_spec_json(e: &EndpointSpec) -> Value {
    let mut m = Map::new();
    m.insert("Mode".into(), endpoint_mode_word(e.mode()).into());
    if !e.ports.is_empty() {
        m.insert("Ports".into(), e.ports.iter().map(port_json).collect());
    }
    Value::Object(m)
}

fn mount_json(mount: &Mount) -> Value {
    let t = mount.r#type();
    let mut m = Map::new();
    m.insert("Type".into(), mount_type_word(t).into());
    put_str(&mut m, "Source", &mount.source);
    put_str(&mut m, "Target", &mount.target);
    if mount.read_only {
        m.insert("ReadOnly".into(), true.into());
    }
    if mount.volume_nocopy || !mount.volume_labels.is_empty() {
        let mut v = Map::new();
        if mount.volume_nocopy {
            v.insert("NoCopy".into(), true.into());
        }
        if !mount.volume_labels.is_empty() {
            v.insert("Labels".into(), labels_json(&mount.volume_labels));
        }
        m.insert("VolumeOptions".into(), Value::Object(v));
    }
    if mount.tmpfs_size_bytes != 0 || mount.tmpfs_mode != 0 {
        let mut v = Map::new();
        put_int(&mut v, "SizeBytes", mount.tmpfs_size_bytes);
        put_int(&mut v, "Mode", i64::from(mount.tmpfs_mode));
        m.insert("TmpfsOptions".into(), Value::Object(v));
    }
    Value::Object(m)
}

/// A secret or config reference as Docker shows it: File (Name, UID, GID,
/// Mode as a number), then the object's ID and name.
fn file_ref_json(
    file: Option<&rswarm_proto::types::SecretFileTarget>,
    id: (&str, &str),
    name: (&str, &str),
) -> Value {
    let f = file.cloned().unwrap_or_default();
    obj(vec![
        (
            "File",
            obj(vec![
                ("Name", f.name.into()),
                ("UID", f.uid.into()),
                ("GID", f.gid.into()),
                ("Mode", f.mode.into()),
            ]),
        ),
        (id.0, id.1.into()),
        (name.0, name.1.into()),
    ])
}

fn healthcheck_json(h: &HealthConfig) -> Value {
    let mut m = Map::new();
    put_strings(&mut m, "Test", &h.test);
    put_int(&mut m, "Interval", h.interval_ns);
    put_int(&mut m, "Timeout", h.timeout_ns);
    put_int(&mut m, "StartPeriod", h.start_period_ns);
    put_int(&mut m, "StartInterval", h.start_interval_ns);
    put_int(&mut m, "Retries", i64::from(h.retries));
    Value::Object(m)
}

fn container_json(c: &ContainerSpec) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "Image", &c.image);
    if !c.labels.is_empty() {
        m.insert("Labels".into(), labels_json(&c.labels));
    }
    put_strings(&mut m, "Command", &c.command);
    put_strings(&mut m, "Args", &c.args);
    put_str(&mut m, "Hostname", &c.hostname);
    put_strings(&mut m, "Env", &c.env);
    put_str(&mut m, "Dir", &c.dir);
    put_str(&mut m, "User", &c.user);
    put_strings(&mut m, "Groups", &c.groups);
    if c.init {
        m.insert("Init".into(), true.into());
    }
    put_str(&mut m, "StopSignal", &c.stop_signal);
    if c.tty {
        m.insert("TTY".into(), true.into());
    }
    if c.open_stdin {
        m.insert("OpenStdin".into(), true.into());
    }
    if c.read_only {
        m.insert("ReadOnly".into(), true.into());
    }
    if !c.mounts.is_empty() {
        m.insert("Mounts".into(), c.mounts.iter().map(mount_json).collect());
    }
    let grace = if c.stop_grace_period_ns == 0 {
        DEFAULT_STOP_GRACE_PERIOD_NS
    } else {
        c.stop_grace_period_ns
    };
    m.insert("StopGracePeriod".into(), grace.into());
    if let Some(h) = &c.healthcheck {
        m.insert("Healthcheck".into(), healthcheck_json(h));
    }
    // References only: a spec never holds a value.
    if !c.secrets.is_empty() {
        let refs = c.secrets.iter().map(|r| {
            file_ref_json(
                r.file.as_ref(),
                ("SecretID", &r.secret_id),
                ("SecretName", &r.secret_name),
            )
        });
        m.insert("Secrets".into(), refs.collect());
    }
    if !c.configs.is_empty() {
        let refs = c.configs.iter().map(|r| {
            file_ref_json(
                r.file.as_ref(),
                ("ConfigID", &r.config_id),
                ("ConfigName", &r.config_name),
            )
        });
        m.insert("Configs".into(), refs.collect());
    }
    m.insert("Isolation".into(), "default".into());
    if !c.sysctls.is_empty() {
        m.insert("Sysctls".into(), labels_json(&c.sysctls));
    }
    put_strings(&mut m, "CapabilityAdd", &c.cap_add);
    put_strings(&mut m, "CapabilityDrop", &c.cap_drop);
    if !c.ulimits.is_empty() {
        let ulimits = c
            .ulimits
            .iter()
            .map(|u| {
                obj(vec![
                    ("Name", u.name.clone().into()),
                    ("Hard", u.hard.into()),
                    ("Soft", u.soft.into()),
                ])
            })
            .collect();
        m.insert("Ulimits".into(), ulimits);
    }
    Value::Object(m)
}

fn limits_json(l: &ResourceLimits, with_pids: bool) -> Value {
    let mut m = Map::new();
    put_int(&mut m, "NanoCPUs", l.nano_cpus);
    put_int(&mut m, "MemoryBytes", l.memory_bytes);
    if with_pids {
        put_int(&mut m, "Pids", l.pids);
    }
    Value::Object(m)
}

pub(crate) fn task_template_json(t: &TaskSpec) -> Value {
    let mut m = Map::new();
    m.insert(
        "ContainerSpec".into(),
        t.container
            .as_ref()
            .map_or_else(|| obj(vec![]), container_json),
    );
    if let Some(r) = &t.resources {
        let mut res = Map::new();
        if let Some(l) = &r.limits {
            res.insert("Limits".into(), limits_json(l, true));
        }
        if let Some(l) = &r.reservations {
            res.insert("Reservations".into(), limits_json(l, false));
        }
        m.insert("Resources".into(), Value::Object(res));
    }
    if let Some(r) = &t.restart {
        let mut rp = Map::new();
        rp.insert(
            "Condition".into(),
            restart_condition_word(r.condition()).into(),
        );
        if r.delay_set || r.delay_ns != 0 {
            rp.insert("Delay".into(), r.delay_ns.into());
        }
        rp.insert("MaxAttempts".into(), r.max_attempts.into());
        put_int(&mut rp, "Window", r.window_ns);
        m.insert("RestartPolicy".into(), Value::Object(rp));
    }
    let mut placement = Map::new();
    if let Some(p) = &t.placement {
        put_strings(&mut placement, "Constraints", &p.constraints);
        if !p.preferences.is_empty() {
            let prefs = p
                .preferences
                .iter()
                .map(|pref| {
                    obj(vec![(
                        "Spread",
                        obj(vec![(
                            "SpreadDescriptor",
                            pref.spread_descriptor.clone().into(),
                        )]),
                    )])
                })
                .collect();
            placement.insert("Preferences".into(), prefs);
        }
        if p.max_replicas != 0 {
            placement.insert("MaxReplicas".into(), p.max_replicas.into());
        }
        if !p.platforms.is_empty() {
            let platforms = p
                .platforms
                .iter()
                .map(|pl| {
                    obj(vec![
                        ("Architecture", pl.architecture.clone().into()),
                        ("OS", pl.os.clone().into()),
                    ])
                })
                .collect();
            placement.insert("Platforms".into(), platforms);
        }
    }
    m.insert("Placement".into(), Value::Object(placement));
    if !t.networks.is_empty() {
        let networks = t
            .networks
            .iter()
            .map(|n| {
                let mut nm = Map::new();
                put_str(&mut nm, "Target", &n.target);
                put_strings(&mut nm, "Aliases", &n.aliases);
                Value::Object(nm)
            })
            .collect();
        m.insert("Networks".into(), networks);
    }
    if let Some(d) = &t.log_driver {
        let mut dm = Map::new();
        dm.insert("Name".into(), d.name.clone().into());
        if !d.options.is_empty() {
            dm.insert("Options".into(), labels_json(&d.options));
        }
        m.insert("LogDriver".into(), Value::Object(dm));
    }
    m.insert("ForceUpdate".into(), t.force_update.into());
    m.insert("Runtime".into(), "container".into());
    Value::Object(m)
}

fn update_config_json(u: &UpdateConfig) -> Value {
    let mut m = Map::new();
    m.insert("Parallelism".into(), u.parallelism.into());
    put_int(&mut m, "Delay", u.delay_ns);
    m.insert(
        "FailureAction".into(),
        failure_action_word(u.failure_action()).into(),
    );
    put_int(&mut m, "Monitor", u.monitor_ns);
    m.insert("MaxFailureRatio".into(), float32_json(u.max_failure_ratio));
    m.insert("Order".into(), update_order_word(u.order()).into());
    Value::Object(m)
}

fn mode_json(mode: Option<&Mode>) -> Value {
    match mode {
        Some(Mode::Replicated(r)) => obj(vec![(
            "Replicated",
            obj(vec![("Replicas", r.replicas.into())]),
        )]),
        Some(Mode::Global(_)) => obj(vec![("Global", obj(vec![]))]),
        Some(Mode::ReplicatedJob(j)) => obj(vec![(
            "ReplicatedJob",
            obj(vec![
                ("MaxConcurrent", j.max_concurrent.into()),
                ("TotalCompletions", j.total_completions.into()),
            ]),
        )]),
        Some(Mode::GlobalJob(_)) => obj(vec![("GlobalJob", obj(vec![]))]),
        None => obj(vec![]),
    }
}

/// A service spec in Docker's `ServiceSpec` JSON shape.
fn service_spec_json(spec: &ServiceSpec) -> Value {
    let mut m = Map::new();
    let annotations = spec.annotations.clone().unwrap_or_default();
    put_str(&mut m, "Name", &annotations.name);
    m.insert("Labels".into(), labels_json(&annotations.labels));
    m.insert(
        "TaskTemplate".into(),
        spec.task
            .as_ref()
            .map_or_else(|| obj(vec![]), task_template_json),
    );
    m.insert("Mode".into(), mode_json(spec.mode.as_ref()));
    if let Some(u) = &spec.update {
        m.insert("UpdateConfig".into(), update_config_json(u));
    }
    if let Some(u) = &spec.rollback {
        m.insert("RollbackConfig".into(), update_config_json(u));
    }
    if let Some(e) = &spec.endpoint {
        m.insert("EndpointSpec".into(), endpoint_spec_json(e));
    }
    Value::Object(m)
}

pub(super) fn update_state_word(s: UpdateState) -> &'static str {
    match s {
        UpdateState::Unknown => "",
        UpdateState::Updating => "updating",
        UpdateState::Paused => "paused",
        UpdateState::Completed => "completed",
        UpdateState::RollbackStarted => "rollback_started",
        UpdateState::RollbackPaused => "rollback_paused",
        UpdateState::RollbackCompleted => "rollback_completed",
    }
}

/// A service as `docker service inspect` shows it: `ID`, `Version.Index`,
/// `CreatedAt`/`UpdatedAt`, `Spec` (see [`service_spec_json`]),
/// `PreviousSpec` when there is one, `Endpoint` (`Spec`, allocated `Ports`,
/// `VirtualIPs`), `UpdateStatus` once an update ran, and `JobStatus` for jobs.
pub(super) fn service_inspect_json(service: &Service) -> Value {
    let meta = service.meta.as_ref();
    let mut m = Map::new();
    m.insert("ID".into(), service.id.clone().into());
    let mut version = Map::new();
    if let Some(v) = meta.and_then(|m| m.version.as_ref()) {
        version.insert("Index".into(), v.index.into());
    }
    m.insert("Version".into(), Value::Object(version));
    m.insert(
        "CreatedAt".into(),
        rfc3339_nano(meta.map_or(0, |m| m.created_at)).into(),
    );
    m.insert(
        "UpdatedAt".into(),
        rfc3339_nano(meta.map_or(0, |m| m.updated_at)).into(),
    );
    let default_spec = ServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&default_spec);
    m.insert("Spec".into(), service_spec_json(spec));
    if let Some(p) = &service.previous_spec {
        m.insert("PreviousSpec".into(), service_spec_json(p));
    }
    let mut endpoint = Map::new();
    match &service.endpoint {
        Some(e) => {
            endpoint.insert(
                "Spec".into(),
                e.spec
                    .as_ref()
                    .map_or_else(|| obj(vec![]), endpoint_spec_json),
            );
            if !e.ports.is_empty() {
                endpoint.insert("Ports".into(), e.ports.iter().map(port_json).collect());
            }
            if !e.virtual_ips.is_empty() {
                let vips = e
                    .virtual_ips
                    .iter()
                    .map(|v| {
                        obj(vec![
                            ("NetworkID", v.network_id.clone().into()),
                            ("Addr", v.addr.clone().into()),
                        ])
                    })
                    .collect();
                endpoint.insert("VirtualIPs".into(), vips);
            }
        }
        None => {
            endpoint.insert("Spec".into(), obj(vec![]));
        }
    }
    m.insert("Endpoint".into(), Value::Object(endpoint));
    if let Some(u) = service
        .update_status
        .as_ref()
        .filter(|u| u.state() != UpdateState::Unknown)
    {
        let mut us = Map::new();
        us.insert("State".into(), update_state_word(u.state()).into());
        if u.started_at != 0 {
            us.insert("StartedAt".into(), rfc3339_nano(u.started_at).into());
        }
        if u.completed_at != 0 {
            us.insert("CompletedAt".into(), rfc3339_nano(u.completed_at).into());
        }
        put_str(&mut us, "Message", &u.message);
        m.insert("UpdateStatus".into(), Value::Object(us));
    }
    if matches!(spec.mode, Some(Mode::ReplicatedJob(_) | Mode::GlobalJob(_))) {
        let job = service.job_status.unwrap_or_default();
        let mut js = Map::new();
        js.insert(
            "JobIteration".into(),
            obj(vec![("Index", job.job_iteration.into())]),
        );
        if job.last_execution != 0 {
            js.insert(
                "LastExecution".into(),
                rfc3339_nano(job.last_execution).into(),
            );
        }
        m.insert("JobStatus".into(), Value::Object(js));
    }
    Value::Object(m)
}
