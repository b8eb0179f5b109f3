//! What a Compose file says, after interpolation and merging: typed, with
//! short and long syntaxes brought to one form. Durations, sizes and CPU
//! counts stay as written here; turning them into a service spec (and
//! checking them there, with the same rules as `service create`) is the
//! stack's conversion step.

use indexmap::IndexMap;

/// A whole Compose project (the merged files).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Project {
    pub services: IndexMap<String, Service>,
    pub networks: IndexMap<String, Network>,
    pub volumes: IndexMap<String, Volume>,
    pub secrets: IndexMap<String, FileObject>,
    pub configs: IndexMap<String, FileObject>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `env_file:` entries first, then `environment:` (which wins).
    pub environment: IndexMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub ports: Vec<Port>,
    /// Empty: the stack's default network.
    pub networks: IndexMap<String, ServiceNetwork>,
    pub volumes: Vec<Mount>,
    pub secrets: Vec<FileRef>,
    pub configs: Vec<FileRef>,
    pub init: Option<bool>,
    pub read_only: bool,
    pub stop_grace_period: Option<String>,
    pub stop_signal: Option<String>,
    pub sysctls: IndexMap<String, String>,
    pub ulimits: IndexMap<String, Ulimit>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opt: Vec<String>,
    /// `host:ip` pairs (Docker's `--add-host`).
    pub extra_hosts: Vec<(String, String)>,
    /// Container labels (`labels:`); service labels are `deploy.labels`.
    pub labels: IndexMap<String, String>,
    pub logging: Option<Logging>,
    pub tty: bool,
    pub stdin_open: bool,
    pub deploy: Deploy,
    pub depends_on: IndexMap<String, Dependency>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`; empty: the image's.
    pub test: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<u64>,
    pub disable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub target: u16,
    pub published: Option<u16>,
    /// tcp, udp or sctp.
    pub protocol: String,
    /// ingress (the routing mesh) or host.
    pub mode: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    Volume,
    Bind,
    Tmpfs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    /// Volume name (a Compose name, not yet namespaced), host path (made
    /// absolute against the first file's folder) or none (anonymous volume,
    /// tmpfs).
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    pub nocopy: bool,
    pub propagation: Option<String>,
    /// tmpfs size as written (`64M`).
    pub tmpfs_size: Option<String>,
    pub tmpfs_mode: Option<u32>,
}

/// A service's use of a secret or config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub source: String,
    /// Secrets: a file name under /run/secrets (default: the source);
    /// configs: an absolute path (default: /<source>).
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: IndexMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// service_started, service_healthy or service_completed_successfully.
    pub condition: String,
    /// Restart this service when the dependency is updated (Compose 2.17).
    pub restart: bool,
    /// `false`: a dependency that is not in the project is skipped.
    pub required: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deploy {
    /// replicated, global, replicated-job or global-job.
    pub mode: Option<String>,
    pub replicas: Option<u64>,
    /// vip or dnsrr.
    pub endpoint_mode: Option<String>,
    /// Service labels.
    pub labels: IndexMap<String, String>,
    pub constraints: Vec<String>,
    /// Spread descriptors (`node.labels.zone`).
    pub preferences: Vec<String>,
    pub max_replicas_per_node: Option<u64>,
    pub limits: Resources,
    pub reservations: Resources,
    pub restart_policy: Option<RestartPolicy>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// CPUs as written (`0.5`).
    pub cpus: Option<String>,
    /// Bytes as written (`64M`).
    pub memory: Option<String>,
    pub pids: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestartPolicy {
    /// none, on-failure or any.
    pub condition: Option<String>,
    pub delay: Option<String>,
    pub max_attempts: Option<u64>,
    pub window: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: Option<String>,
    /// pause, continue or rollback.
    pub failure_action: Option<String>,
    pub monitor: Option<String>,
    pub max_failure_ratio: Option<f64>,
    /// stop-first or start-first.
    pub order: Option<String>,
}

/// A top-level network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Network {
    /// Set when `external`: the name to look up.
    pub external: Option<String>,
    /// `name:` (not namespaced by the stack when given).
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: IndexMap<String, String>,
    pub attachable: bool,
    pub internal: bool,
    pub labels: IndexMap<String, String>,
    pub subnets: Vec<Subnet>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subnet {
    pub subnet: String,
    pub gateway: Option<String>,
}

/// A top-level volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volume {
    pub external: Option<String>,
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: IndexMap<String, String>,
    pub labels: IndexMap<String, String>,
}

/// A top-level secret or config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileObject {
    pub external: Option<String>,
    pub name: Option<String>,
    /// `file:`, made absolute against the first file's folder.
    pub file: Option<String>,
    /// `environment:`: the variable whose value is the content.
    pub environment: Option<String>,
    /// That variable's value, looked up when the file was read (never
    /// printed by `stack config`, which shows the variable's name).
    pub environment_value: Option<String>,
    /// `content:` (configs).
    pub content: Option<String>,
    pub labels: IndexMap<String, String>,
}
