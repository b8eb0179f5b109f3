//! The `service create` flags, named, spelled and defaulted as Docker's:
//! what was typed. [`ServiceFlags::edits`] turns them into `edits::SpecEdit`s
//! (what it means), and `to_spec` applies those to the defaults. Values are
//! taken as text and parsed here (not by clap) so that every refusal is one line in Docker's
//! words (`invalid argument "64X" for "--limit-memory" flag: invalid size:
//! '64X'`) and the whole spec is refused before anything is sent. The
//! flags `service update` takes as they are live in `shared`, flattened in.

use std::path::PathBuf;

use clap::Args;
use rswarm_proto::spec::constraints::{parse_preference, Constraint};
use rswarm_proto::spec::dns::{
    parse_dns_option, parse_dns_search, parse_dns_server, parse_extra_host,
};
use rswarm_proto::spec::mounts::{parse_mount, resolve_bind_source};
use rswarm_proto::spec::ports::parse_publish;
use rswarm_proto::spec::secrets::{parse_reference, Kind};
use rswarm_proto::spec::units::{parse_float, parse_uint};
use rswarm_proto::spec::{csv_fields, ValueError};
use rswarm_proto::types::{ConfigReference, NetworkAttachmentConfig, SecretReference, ServiceSpec};

use super::container::{parse_env, parse_env_file, parse_label, parse_sysctl, parse_ulimit};
use super::edits::{apply, defaults, SpecEdit};
use super::policy::{check_failure_ratio, parse_endpoint_mode, service_mode, ModeKind};
use super::shared::SharedFlags;
use super::SpecError;

/// Everything `service create` takes besides IMAGE, COMMAND and ARGs.
#[derive(Args, Debug, Clone, Default)]
pub struct ServiceFlags {
    /// Service name
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Service mode ("replicated", "global", "replicated-job", "global-job")
    #[arg(long, value_name = "string", default_value = "replicated")]
    pub mode: String,
    /// Publish a port as a node port
    #[arg(short = 'p', long, value_name = "port")]
    pub publish: Vec<String>,
    /// Endpoint mode (vip or dnsrr)
    #[arg(long = "endpoint-mode", value_name = "string", default_value = "vip")]
    pub endpoint_mode: String,
    /// Network attachments
    #[arg(long, value_name = "network")]
    pub network: Vec<String>,
    /// Placement constraints
    #[arg(long, value_name = "list")]
    pub constraint: Vec<String>,
    /// Add a placement preference
    #[arg(long = "placement-pref", value_name = "pref")]
    pub placement_pref: Vec<String>,
    /// Set environment variables
    #[arg(short = 'e', long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Service labels
    #[arg(short = 'l', long, value_name = "list")]
    pub label: Vec<String>,
    /// Container labels
    #[arg(long = "container-label", value_name = "list")]
    pub container_label: Vec<String>,
    /// Attach a filesystem mount to the service
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Specify secrets to expose to the service
    #[arg(long, value_name = "secret")]
    pub secret: Vec<String>,
    /// Specify configurations to expose to the service
    #[arg(long, value_name = "config")]
    pub config: Vec<String>,
    /// Set one or more supplementary user groups for the container
    #[arg(long, value_name = "list")]
    pub group: Vec<String>,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set one or more custom host-to-IP mappings (host:ip)
    #[arg(long = "host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Sysctl options
    #[arg(long, value_name = "list")]
    pub sysctl: Vec<String>,
    /// The flags `service update` takes too.
    #[command(flatten)]
    pub shared: SharedFlags,
}

/// Where the flags' local inputs come from: the environment (bare `-e KEY`),
/// files (`--env-file`) and the directory relative bind sources start from.
pub struct LocalInputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub read_file: &'a dyn Fn(&str) -> Result<String, String>,
    pub cwd: PathBuf,
}

impl LocalInputs<'_> {
    /// This process's environment, files and working directory.
    pub fn process() -> LocalInputs<'static> {
        LocalInputs {
            env: &process_env,
            read_file: &read_local_file,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }
}

fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Reads a local file, failing with Go's `open PATH: reason` line.
pub fn read_local_file(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("open {path}: {reason}")
    })
}

/// Parses an optional flag value with `parse`, naming the flag on failure.
pub(super) fn opt<T>(
    flag: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, SpecError> {
    value
        .as_deref()
        .map(|v| parse(v).map_err(|e| SpecError::flag(flag, v, e)))
        .transpose()
}

/// Parses every value of a repeated flag with `parse`.
pub(super) fn each<T>(
    flag: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Vec<T>, SpecError> {
    values
        .iter()
        .map(|v| parse(v).map_err(|e| SpecError::flag(flag, v, e)))
        .collect()
}

pub(super) fn ratio(value: &str) -> Result<f32, ValueError> {
    let r = parse_float(value)? as f32;
    check_failure_ratio(r)?;
    Ok(r)
}

/// One `--network` value: a name, or `name=…,alias=…` (Docker's long form).
pub fn parse_network(value: &str) -> Result<NetworkAttachmentConfig, ValueError> {
    if !value.contains('=') {
        if value.is_empty() {
            return Err(ValueError::new("network name/id is not specified"));
        }
        return Ok(NetworkAttachmentConfig {
            target: value.to_string(),
            aliases: vec![],
        });
    }
    let mut attachment = NetworkAttachmentConfig::default();
    for field in csv_fields(value)? {
        let (key, val) = field
            .split_once('=')
            .ok_or_else(|| ValueError(format!("invalid field {field}")))?;
        match key.to_ascii_lowercase().as_str() {
            "name" => attachment.target = val.to_string(),
            "alias" => attachment.aliases.push(val.to_string()),
            "driver-opt" => {
                return Err(ValueError::new(
                    "network driver options are not supported by rswarm",
                ))
            }
            other => return Err(ValueError(format!("invalid field key {other}"))),
        }
    }
    if attachment.target.is_empty() {
        return Err(ValueError::new("network name/id is not specified"));
    }
    Ok(attachment)
}

impl ServiceFlags {
    /// The spec for `service create [flags] IMAGE [COMMAND] [ARG...]`, from
    /// this process's environment and files, validated.
    pub fn to_spec(&self, image: &str, args: &[String]) -> Result<ServiceSpec, SpecError> {
        self.to_spec_with(image, args, &LocalInputs::process())
    }

    /// [`ServiceFlags::to_spec`] with the local inputs given: the flags'
    /// edits applied to the defaults of their mode, then validated.
    pub fn to_spec_with(
        &self,
        image: &str,
        args: &[String],
        local: &LocalInputs<'_>,
    ) -> Result<ServiceSpec, SpecError> {
        let kind =
            ModeKind::parse(&self.mode).map_err(|e| SpecError::flag("--mode", &self.mode, e))?;
        let mut spec = defaults(kind);
        let mut edits = vec![
            SpecEdit::Image(image.to_string()),
            SpecEdit::Args(args.to_vec()),
        ];
        edits.extend(self.edits(kind, local)?);
        apply(&mut spec, edits);
        rswarm_proto::spec::validate(&spec).map_err(|p| SpecError::Invalid(p.to_string()))?;
        Ok(spec)
    }

    /// What the flags mean, as edits: every value parsed, the first that
    /// does not parse refused naming its flag.
    pub fn edits(
        &self,
        kind: ModeKind,
        local: &LocalInputs<'_>,
    ) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        if let Some(name) = &self.name {
            edits.push(SpecEdit::Name(name.clone()));
        }
        let replicas = opt("--replicas", &self.shared.replicas, parse_uint)?;
        let max_concurrent = opt("--max-concurrent", &self.shared.max_concurrent, parse_uint)?;
        let max_per_node = opt(
            "--replicas-max-per-node",
            &self.shared.replicas_max_per_node,
            parse_uint,
        )?
        .unwrap_or(0);
        edits.push(SpecEdit::Mode(service_mode(
            kind,
            replicas,
            max_concurrent,
            max_per_node,
        )?));
        edits.push(SpecEdit::MaxReplicasPerNode(max_per_node));

        for p in each("-p, --publish", &self.publish, parse_publish)? {
            edits.extend(p.into_iter().map(SpecEdit::Publish));
        }
        edits.push(SpecEdit::EndpointMode(
            parse_endpoint_mode(&self.endpoint_mode)
                .map_err(|e| SpecError::flag("--endpoint-mode", &self.endpoint_mode, e))?,
        ));
        edits.extend(each("--constraint", &self.constraint, |c| {
            Constraint::parse(c).map(|_| SpecEdit::Constraint(c.trim().to_string()))
        })?);
        edits.extend(
            each("--placement-pref", &self.placement_pref, parse_preference)?
                .into_iter()
                .map(SpecEdit::Preference),
        );

        edits.extend(self.shared.resource_edits()?);
        edits.extend(self.shared.restart_edits()?);

        for path in &self.env_file {
            let content = (local.read_file)(path).map_err(SpecError::Invalid)?;
            edits.push(SpecEdit::Env(
                parse_env_file(&content, local.env)
                    .map_err(|e| SpecError::flag("--env-file", path, e))?,
            ));
        }
        edits.push(SpecEdit::Env(each("-e, --env", &self.env, |v| {
            parse_env(v, local.env)
        })?));
        for (k, v) in each("-l, --label", &self.label, parse_label)? {
            edits.push(SpecEdit::Label(k, v));
        }
        for (k, v) in each("--container-label", &self.container_label, parse_label)? {
            edits.push(SpecEdit::ContainerLabel(k, v));
        }
        for mut m in each("--mount", &self.mount, parse_mount)? {
            resolve_bind_source(&mut m, &local.cwd);
            edits.push(SpecEdit::Mount(m));
        }
        edits.extend(self.file_edits()?);
        edits.extend(self.container_edits()?);
        edits.extend(
            each("--network", &self.network, parse_network)?
                .into_iter()
                .map(SpecEdit::Network),
        );
        edits.extend(self.shared.update_edits(false)?);
        edits.extend(self.shared.update_edits(true)?);
        edits.extend(self.shared.log_edits()?);
        Ok(edits)
    }

    /// `--secret` and `--config`, by name (the control API resolves them).
    fn file_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
        let secrets = each("--secret", &self.secret, |v| {
            parse_reference(Kind::Secret, v)
        })?;
        let configs = each("--config", &self.config, |v| {
            parse_reference(Kind::Config, v)
        })?;
        let secrets = secrets.into_iter().map(|(name, file)| {
            SpecEdit::Secret(SecretReference {
                secret_id: String::new(),
                secret_name: name,
                file: Some(file),
            })
        });
        let configs = configs.into_iter().map(|(name, file)| {
            SpecEdit::Config(ConfigReference {
                config_id: String::new(),
                config_name: name,
                file: Some(file),
            })
        });
        Ok(secrets.chain(configs).collect())
    }

    /// The container's settings besides env, labels and mounts.
    fn container_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = self.shared.process_edits()?;
        if !self.group.is_empty() {
            edits.push(SpecEdit::Groups(self.group.clone()));
        }
        edits.push(SpecEdit::Init(self.init));
        edits.push(SpecEdit::ReadOnly(self.read_only));
        edits.push(SpecEdit::Tty(self.tty));
        edits.push(SpecEdit::Healthcheck(self.shared.health()?.for_create()?));
        edits.extend(
            each("--ulimit", &self.ulimit, parse_ulimit)?
                .into_iter()
                .map(SpecEdit::Ulimit),
        );
        edits.extend(
            each("--dns", &self.dns, parse_dns_server)?
                .into_iter()
                .map(SpecEdit::DnsServer),
        );
        edits.extend(
            each("--dns-search", &self.dns_search, parse_dns_search)?
                .into_iter()
                .map(SpecEdit::DnsSearch),
        );
        edits.extend(
            each("--dns-option", &self.dns_option, parse_dns_option)?
                .into_iter()
                .map(SpecEdit::DnsOption),
        );
        edits.extend(
            each("--host", &self.add_host, parse_extra_host)?
                .into_iter()
                .map(SpecEdit::Host),
        );
        for (k, v) in each("--sysctl", &self.sysctl, parse_sysctl)? {
            edits.push(SpecEdit::Sysctl(k, v));
        }
        edits.push(self.shared.capability_edit()?);
        Ok(edits)
    }
}

#[cfg(test)]
pub(crate) mod tests;
