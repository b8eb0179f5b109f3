//! What the user's flags mean, apart from how they were typed: a list of
//! [`SpecEdit`]s applied to a spec. `service create` applies them to
//! [`defaults`] (Docker's defaults for the mode); `service update` applies
//! the same edits, with `Remove` and `ForceUpdate`, to the current spec. Every value here is already parsed
//! and normalised (`flags` turns text into edits, naming the flag when a
//! value is wrong); applying cannot fail, and the result is checked whole by
//! `rswarm_proto::spec::validate`.

use rswarm_proto::spec::capabilities::effective_capabilities;
use rswarm_proto::types::endpoint_spec::ResolutionMode;
use rswarm_proto::types::restart_policy::Condition;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_config::{FailureAction, UpdateOrder};
use rswarm_proto::types::{
    Annotations, ConfigReference, ContainerSpec, EndpointSpec, HealthConfig, Mount,
    NetworkAttachmentConfig, Placement, PlacementPreference, PortConfig, ResourceLimits,
    ResourceRequirements, SecretReference, ServiceSpec, TaskSpec, Ulimit, UpdateConfig,
};

use super::policy::{default_restart_policy, default_update_config, ModeKind};
use super::removals::{remove, Removal};

/// One field of an update (or rollback) config.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateField {
    Parallelism(u64),
    DelayNs(i64),
    FailureAction(FailureAction),
    MonitorNs(i64),
    MaxFailureRatio(f32),
    Order(UpdateOrder),
}

/// One change to a service spec, in the spec's own terms.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecEdit {
    Name(String),
    Mode(Mode),
    /// A service label (`-l`); an existing key takes the new value.
    Label(String, String),
    Image(String),
    Args(Vec<String>),
    /// `--entrypoint`: the command words.
    Command(Vec<String>),
    Hostname(String),
    Workdir(String),
    User(String),
    Groups(Vec<String>),
    /// Environment entries added after the ones there (`KEY=VALUE`, `KEY`).
    Env(Vec<String>),
    ContainerLabel(String, String),
    Mount(Mount),
    /// A secret given to the task (`--secret`), by name: the control API
    /// resolves it to the secret's ID.
    Secret(SecretReference),
    /// A config given to the task (`--config`), by name.
    Config(ConfigReference),
    StopSignal(String),
    StopGracePeriodNs(i64),
    Init(bool),
    ReadOnly(bool),
    Tty(bool),
    /// Keep standard input open (Compose's `stdin_open`).
    OpenStdin(bool),
    /// The whole health check (`None`: the image's).
    Healthcheck(Option<HealthConfig>),
    Ulimit(Ulimit),
    Sysctl(String, String),
    /// `--dns`: a nameserver added (an IP address).
    DnsServer(String),
    /// `--dns-search`: a search domain added.
    DnsSearch(String),
    /// `--dns-option`: a resolv.conf option added.
    DnsOption(String),
    /// `--host`: an `"IP HOSTNAME"` line added to /etc/hosts.
    Host(String),
    /// `--with-registry-auth`: Docker's encoded credentials for the image's
    /// registry, sent with the tasks.
    RegistryAuth(String),
    /// Capabilities added and dropped (normalised names), combined with
    /// the spec's as Docker's `EffectiveCapAddCapDrop` does.
    Capabilities {
        add: Vec<String>,
        drop: Vec<String>,
    },
    LimitNanoCpus(i64),
    LimitMemoryBytes(i64),
    LimitPids(i64),
    ReserveNanoCpus(i64),
    ReserveMemoryBytes(i64),
    RestartCondition(Condition),
    RestartDelayNs(i64),
    RestartMaxAttempts(u64),
    RestartWindowNs(i64),
    Constraint(String),
    Preference(PlacementPreference),
    MaxReplicasPerNode(u64),
    Network(NetworkAttachmentConfig),
    Publish(PortConfig),
    EndpointMode(ResolutionMode),
    Update(UpdateField),
    Rollback(UpdateField),
    /// `--log-driver` with its `--log-opt`s (Compose's `logging:`): the
    /// task's whole log driver, replacing any before.
    LogDriver {
        name: String,
        options: Vec<(String, String)>,
    },
    /// `service update`'s `*-rm` flags (and the first half of an `*-add`
    /// that replaces an entry): one entry taken out by its key.
    Remove(Removal),
    /// `service update --force`: the task template's `force_update` counter
    /// moves on, so every task is replaced even with no other change.
    ForceUpdate,
}

/// Docker's defaults for a service of `kind`: no name, no image yet, one
/// replica (for replicated), the mode's restart policy, the default update
/// and rollback configs, VIP endpoint mode.
pub fn defaults(kind: ModeKind) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations::default()),
        task: Some(TaskSpec {
            container: Some(ContainerSpec::default()),
            resources: Some(ResourceRequirements {
                limits: Some(ResourceLimits::default()),
                reservations: Some(ResourceLimits::default()),
            }),
            restart: Some(default_restart_policy(kind)),
            placement: Some(Placement::default()),
            networks: vec![],
            force_update: 0,
            log_driver: None,
        }),
        update: Some(default_update_config()),
        rollback: Some(default_update_config()),
        endpoint: Some(EndpointSpec {
            mode: ResolutionMode::Vip as i32,
            ports: vec![],
        }),
        mode: None,
        depends_on: vec![],
    }
}

/// Applies `edits` to `spec` in order.
pub fn apply(spec: &mut ServiceSpec, edits: impl IntoIterator<Item = SpecEdit>) {
    for edit in edits {
        apply_one(spec, edit);
    }
}

fn apply_one(spec: &mut ServiceSpec, edit: SpecEdit) {
    use SpecEdit as E;
    match edit {
        E::Name(n) => annotations(spec).name = n,
        E::Label(k, v) => {
            annotations(spec).labels.insert(k, v);
        }
        E::Mode(m) => spec.mode = Some(m),
        E::Publish(p) => endpoint(spec).ports.push(p),
        E::EndpointMode(m) => endpoint(spec).mode = m as i32,
        E::Remove(r) => remove(spec, r),
        E::Update(f) => update_field(spec.update.get_or_insert_with(default_update_config), f),
        E::Rollback(f) => update_field(spec.rollback.get_or_insert_with(default_update_config), f),
        other => apply_task(task(spec), other),
    }
}

fn annotations(spec: &mut ServiceSpec) -> &mut Annotations {
    spec.annotations.get_or_insert_with(Default::default)
}

fn endpoint(spec: &mut ServiceSpec) -> &mut EndpointSpec {
    spec.endpoint.get_or_insert_with(Default::default)
}

fn task(spec: &mut ServiceSpec) -> &mut TaskSpec {
    spec.task.get_or_insert_with(Default::default)
}

fn update_field(c: &mut UpdateConfig, field: UpdateField) {
    match field {
        UpdateField::Parallelism(p) => c.parallelism = p,
        UpdateField::DelayNs(d) => c.delay_ns = d,
        UpdateField::FailureAction(a) => c.failure_action = a as i32,
        UpdateField::MonitorNs(m) => c.monitor_ns = m,
        UpdateField::MaxFailureRatio(r) => c.max_failure_ratio = r,
        UpdateField::Order(o) => c.order = o as i32,
    }
}

fn apply_task(t: &mut TaskSpec, edit: SpecEdit) {
    use SpecEdit as E;
    let resources = t.resources.get_or_insert_with(Default::default);
    let restart = t.restart.get_or_insert_with(Default::default);
    let placement = t.placement.get_or_insert_with(Default::default);
    match edit {
        E::LimitNanoCpus(n) => {
            resources
                .limits
                .get_or_insert_with(Default::default)
                .nano_cpus = n
        }
        E::LimitMemoryBytes(n) => {
            resources
                .limits
                .get_or_insert_with(Default::default)
                .memory_bytes = n
        }
        E::LimitPids(n) => resources.limits.get_or_insert_with(Default::default).pids = n,
        E::ReserveNanoCpus(n) => {
            resources
                .reservations
                .get_or_insert_with(Default::default)
                .nano_cpus = n
        }
        E::ReserveMemoryBytes(n) => {
            resources
                .reservations
                .get_or_insert_with(Default::default)
                .memory_bytes = n
        }
        E::RestartCondition(c) => restart.condition = c as i32,
        E::RestartDelayNs(d) => restart.delay_ns = d,
        E::RestartMaxAttempts(n) => restart.max_attempts = n,
        E::RestartWindowNs(w) => restart.window_ns = w,
        E::Constraint(c) => placement.constraints.push(c),
        E::Preference(p) => placement.preferences.push(p),
        E::MaxReplicasPerNode(n) => placement.max_replicas = n,
        E::Network(n) => t.networks.push(n),
        E::ForceUpdate => t.force_update = t.force_update.wrapping_add(1),
        E::LogDriver { name, options } => {
            t.log_driver = Some(rswarm_proto::types::Driver {
                name,
                options: options.into_iter().collect(),
            })
        }
        other => apply_container(t.container.get_or_insert_with(Default::default), other),
    }
}

fn apply_container(c: &mut ContainerSpec, edit: SpecEdit) {
    use SpecEdit as E;
    match edit {
        E::Image(i) => c.image = i,
        E::Args(a) => c.args = a,
        E::Command(words) => c.command = words,
        E::Hostname(h) => c.hostname = h,
        E::Workdir(d) => c.dir = d,
        E::User(u) => c.user = u,
        E::Groups(g) => c.groups = g,
        E::Env(env) => c.env.extend(env),
        E::ContainerLabel(k, v) => {
            c.labels.insert(k, v);
        }
        E::Mount(m) => c.mounts.push(m),
        E::Secret(r) => c.secrets.push(r),
        E::Config(r) => c.configs.push(r),
        E::StopSignal(s) => c.stop_signal = s,
        E::StopGracePeriodNs(n) => c.stop_grace_period_ns = n,
        E::Init(i) => c.init = i,
        E::ReadOnly(r) => c.read_only = r,
        E::Tty(t) => c.tty = t,
        E::OpenStdin(o) => c.open_stdin = o,
        E::Healthcheck(h) => c.healthcheck = h,
        E::Ulimit(u) => c.ulimits.push(u),
        E::Sysctl(k, v) => {
            c.sysctls.insert(k, v);
        }
        E::DnsServer(n) => c
            .dns_config
            .get_or_insert_with(Default::default)
            .nameservers
            .push(n),
        E::DnsSearch(d) => c
            .dns_config
            .get_or_insert_with(Default::default)
            .search
            .push(d),
        E::DnsOption(o) => c
            .dns_config
            .get_or_insert_with(Default::default)
            .options
            .push(o),
        E::Host(line) => c.hosts.push(line),
        E::RegistryAuth(a) => {
            c.pull_options = Some(rswarm_proto::types::PullOptions { registry_auth: a })
        }
        E::Capabilities { add, drop } => {
            let add: Vec<String> = c.cap_add.iter().cloned().chain(add).collect();
            let drop: Vec<String> = c.cap_drop.iter().cloned().chain(drop).collect();
            (c.cap_add, c.cap_drop) = effective_capabilities(&add, &drop);
        }
        // Service-level and task-level edits were applied by the callers.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::ReplicatedService;

    #[test]
    fn edits_apply_in_order_over_the_defaults() {
        let mut spec = defaults(ModeKind::Replicated);
        apply(
            &mut spec,
            [
                SpecEdit::Name("web".into()),
                SpecEdit::Mode(Mode::Replicated(ReplicatedService { replicas: 3 })),
                SpecEdit::Image("busybox".into()),
                SpecEdit::Env(vec!["A=1".into()]),
                SpecEdit::Env(vec!["B=2".into()]),
                SpecEdit::LimitMemoryBytes(64 << 20),
                SpecEdit::Constraint("node.role==worker".into()),
                SpecEdit::Update(UpdateField::Parallelism(2)),
                SpecEdit::Capabilities {
                    add: vec!["CAP_NET_ADMIN".into()],
                    drop: vec!["CAP_NET_ADMIN".into(), "CAP_KILL".into()],
                },
            ],
        );
        let c = spec
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .cloned()
            .unwrap_or_default();
        assert_eq!(c.image, "busybox");
        assert_eq!(c.env, vec!["A=1".to_string(), "B=2".to_string()]);
        assert_eq!(
            (c.cap_add, c.cap_drop),
            (
                vec!["CAP_NET_ADMIN".to_string()],
                vec!["CAP_KILL".to_string()]
            )
        );
        assert_eq!(spec.update.map(|u| u.parallelism), Some(2));
        assert_eq!(spec.rollback.map(|u| u.parallelism), Some(1));
        assert_eq!(
            spec.mode,
            Some(Mode::Replicated(ReplicatedService { replicas: 3 }))
        );
        let t = spec.task.unwrap_or_default();
        assert_eq!(
            t.placement.map(|p| p.constraints),
            Some(vec!["node.role==worker".to_string()])
        );
        assert_eq!(
            t.resources.and_then(|r| r.limits).map(|l| l.memory_bytes),
            Some(64 << 20)
        );
        // The defaults alone have no image or mode: not a service yet.
        assert!(rswarm_proto::spec::validate(&defaults(ModeKind::Global)).is_err());
    }
}
