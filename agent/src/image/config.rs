//! The image configuration blob (`application/vnd.oci.image.config.v1+json`
//! or Docker's `application/vnd.docker.container.image.v1+json`, the same
//! JSON): the runtime settings a container inherits and the diff-ids of the
//! layers.
//!
//! Parsed with our own lenient serde types rather than `oci-spec`'s
//! `ImageConfiguration`: Docker images carry fields the OCI spec does not
//! (`Healthcheck`), and real configs have `null` where the spec has lists.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{sha256_hex, ImageConfig};

/// What the store keeps from a config blob.
#[derive(Debug, Clone)]
pub(crate) struct ParsedConfig {
    pub config: ImageConfig,
    /// `sha256:<hex>` of each uncompressed layer tar, base first.
    pub diff_ids: Vec<String>,
    pub created: i64,
    pub os: String,
    pub architecture: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawConfig {
    created: Option<String>,
    architecture: Option<String>,
    os: Option<String>,
    config: Option<RawContainerConfig>,
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct RawContainerConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    stop_signal: Option<String>,
    labels: Option<HashMap<String, String>>,
    healthcheck: Option<RawHealthcheck>,
    exposed_ports: Option<HashMap<String, serde_json::Value>>,
    volumes: Option<HashMap<String, serde_json::Value>>,
}

/// Durations are nanoseconds, as Go's `time.Duration` marshals them.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct RawHealthcheck {
    test: Option<Vec<String>>,
    interval: Option<i64>,
    timeout: Option<i64>,
    start_period: Option<i64>,
    start_interval: Option<i64>,
    retries: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRootfs {
    #[serde(rename = "type")]
    kind: Option<String>,
    diff_ids: Option<Vec<String>>,
}

fn nanos(v: Option<i64>) -> Option<Duration> {
    v.filter(|n| *n > 0)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_nanos)
}

fn sorted_keys(m: Option<HashMap<String, serde_json::Value>>) -> Vec<String> {
    let mut v: Vec<String> = m.unwrap_or_default().into_keys().collect();
    v.sort();
    v
}

impl ParsedConfig {
    /// Refuses images for another OS (Docker's words); another architecture
    /// only gets a warning, as in Docker (it may run under binfmt emulation).
    pub(super) fn check_platform(&self) -> Result<(), String> {
        if !self.os.is_empty() && self.os != "linux" {
            return Err(format!(
                "image operating system \"{}\" cannot be used on this platform",
                self.os
            ));
        }
        let arch = super::host_arch();
        if !self.architecture.is_empty() && self.architecture != arch {
            tracing::warn!(
                image_arch = %self.architecture,
                host_arch = arch,
                "the image's platform does not match the host's"
            );
        }
        Ok(())
    }
}

/// Parses a config blob; the error is a one-line reason.
pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedConfig, String> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid image config: {e}"))?;
    let rootfs = raw.rootfs.unwrap_or_default();
    if let Some(kind) = rootfs.kind.as_deref() {
        if kind != "layers" {
            return Err(format!("unsupported rootfs type {kind:?} in image config"));
        }
    }
    let diff_ids = rootfs.diff_ids.unwrap_or_default();
    if let Some(bad) = diff_ids.iter().find(|d| sha256_hex(d).is_none()) {
        return Err(format!("unsupported diff-id {bad:?} in image config"));
    }
    let c = raw.config.unwrap_or_default();
    let hc = c.healthcheck;
    let config = ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        labels: c.labels.unwrap_or_default(),
        healthcheck: hc.as_ref().and_then(|h| h.test.clone()),
        healthcheck_interval: hc.as_ref().and_then(|h| nanos(h.interval)),
        healthcheck_timeout: hc.as_ref().and_then(|h| nanos(h.timeout)),
        healthcheck_start_period: hc.as_ref().and_then(|h| nanos(h.start_period)),
        healthcheck_start_interval: hc.as_ref().and_then(|h| nanos(h.start_interval)),
        healthcheck_retries: hc
            .as_ref()
            .and_then(|h| h.retries)
            .filter(|r| *r > 0)
            .and_then(|r| u32::try_from(r).ok()),
        exposed_ports: sorted_keys(c.exposed_ports),
        volumes: sorted_keys(c.volumes),
    };
    let created = raw
        .created
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0);
    Ok(ParsedConfig {
        config,
        diff_ids,
        created,
        os: raw.os.unwrap_or_default(),
        architecture: raw.architecture.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_config_with_nulls_and_healthcheck() {
        let json = br#"{
            "architecture": "amd64", "os": "linux",
            "created": "2024-01-02T03:04:05.123456789Z",
            "config": {
                "Entrypoint": ["/bin/app"], "Cmd": null, "Env": ["A=1"],
                "WorkingDir": "/srv", "User": "1000:1000", "StopSignal": "SIGINT",
                "Labels": null, "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5000000000, "StartInterval": 500000000, "Retries": 3}
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]}
        }"#;
        let p = parse(json).unwrap();
        assert_eq!(p.config.entrypoint, vec!["/bin/app"]);
        assert!(p.config.cmd.is_empty());
        assert_eq!(p.config.working_dir, "/srv");
        assert_eq!(p.config.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(p.config.exposed_ports, vec!["443/tcp", "80/tcp"]);
        assert_eq!(
            p.config.healthcheck,
            Some(vec!["CMD-SHELL".to_string(), "true".to_string()])
        );
        assert_eq!(p.config.healthcheck_interval, Some(Duration::from_secs(5)));
        assert_eq!(p.config.healthcheck_retries, Some(3));
        assert_eq!(
            p.config.healthcheck_start_interval,
            Some(Duration::from_millis(500))
        );
        assert_eq!(p.created, 1704164645);
        assert_eq!(p.diff_ids.len(), 1);
        assert!(parse(b"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"md5:x\"]}}").is_err());
        assert!(parse(b"not json").is_err());
    }
}
