//! The daemon's configuration file (JSON, in the spirit of Docker's
//! `daemon.json`). Unknown keys are an error, so a typo is caught at start
//! instead of silently ignored. Command-line flags win over the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// Keys accepted in the config file.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DaemonConfig {
    /// Engine labels, `key=value` strings, shown on the node.
    #[serde(default)]
    pub labels: Vec<String>,
    /// error, warn, info, debug, trace.
    pub log_level: Option<String>,
    /// Same as log-level debug.
    #[serde(default)]
    pub debug: bool,
    /// The data directory (the `--data-dir` flag wins).
    pub data_root: Option<PathBuf>,
    /// The control socket (the `--socket` flag wins).
    pub socket: Option<PathBuf>,
    /// The node name (the `--node-name` flag wins).
    pub node_name: Option<String>,
    /// Prometheus metrics listener (the `--metrics-addr` flag wins).
    pub metrics_addr: Option<String>,
    /// Web dashboard listener on managers (the `--dashboard-addr` flag wins).
    pub dashboard_addr: Option<String>,
    /// Registries reached over plain HTTP: `host:port` entries or CIDRs.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Mirrors tried, in order, before Docker Hub (URLs).
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
    /// Credentials per registry host: `{"10.0.0.2:5000": {"username": "u", "password": "p"}}`.
    #[serde(default)]
    pub registry_auths: BTreeMap<String, RegistryAuth>,
    /// OCI runtimes by name, as Docker's `runtimes`: `{"runc": {"path": "/usr/sbin/runc"}}`.
    #[serde(default)]
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    /// The runtime to use (default "runc").
    pub default_runtime: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryAuth {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuntimeEntry {
    pub path: PathBuf,
}

impl DaemonConfig {
    /// Read and validate a config file.
    pub(crate) fn load(path: &Path) -> anyhow::Result<DaemonConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading daemon config {}", path.display()))?;
        let cfg: DaemonConfig = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("daemon config {}: {e}", path.display()))?;
        cfg.engine_labels()
            .with_context(|| format!("daemon config {}", path.display()))?;
        cfg.runtime_path()
            .with_context(|| format!("daemon config {}", path.display()))?;
        if let Some(level) = &cfg.log_level {
            if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                bail!(
                    "daemon config {}: log-level {level:?} is not one of error, warn, info, debug, trace",
                    path.display()
                );
            }
        }
        Ok(cfg)
    }

    /// Labels as a map; each must be `key=value`.
    pub(crate) fn engine_labels(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for l in &self.labels {
            let Some((k, v)) = l.split_once('=') else {
                bail!("label {l:?} is not of the form key=value");
            };
            if k.is_empty() {
                bail!("label {l:?} has an empty key");
            }
            out.insert(k.to_string(), v.to_string());
        }
        Ok(out)
    }

    /// The OCI runtime binary: `default-runtime` looked up in `runtimes`,
    /// else `runc` from PATH.
    pub(crate) fn runtime_path(&self) -> anyhow::Result<PathBuf> {
        let name = self
            .default_runtime
            .clone()
            .unwrap_or_else(|| "runc".into());
        if let Some(r) = self.runtimes.get(&name) {
            return Ok(r.path.clone());
        }
        if name != "runc" {
            bail!("default-runtime {name:?} is not defined in \"runtimes\"");
        }
        Ok(PathBuf::from("runc"))
    }

    /// The log filter the daemon should use.
    pub(crate) fn log_filter(&self) -> String {
        if self.debug {
            return "debug".into();
        }
        self.log_level.clone().unwrap_or_else(|| "info".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<DaemonConfig> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("daemon.json");
        std::fs::write(&p, text)?;
        DaemonConfig::load(&p)
    }

    #[test]
    fn reads_the_dashboard_address() {
        let c = load(r#"{"dashboard-addr":"10.0.0.1:9999"}"#).unwrap();
        assert_eq!(c.dashboard_addr.as_deref(), Some("10.0.0.1:9999"));
    }

    #[test]
    fn reads_known_keys() {
        let c = load(r#"{"labels":["zone=a","ssd=true"],"log-level":"debug","data-root":"/x"}"#)
            .unwrap();
        assert_eq!(
            c.engine_labels().unwrap().get("zone").map(String::as_str),
            Some("a")
        );
        assert_eq!(c.log_filter(), "debug");
        assert_eq!(c.data_root.as_deref(), Some(Path::new("/x")));
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = load(r#"{"lables":["a=b"]}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `lables`"), "{e}");
    }

    #[test]
    fn registries_and_runtimes() {
        let c = load(
            r#"{"insecure-registries":["10.0.0.2:5000"],"registry-mirrors":["http://m:5000"],
            "registry-auths":{"r:5000":{"username":"u","password":"p"}},
            "runtimes":{"myrunc":{"path":"/opt/runc"}},"default-runtime":"myrunc"}"#,
        )
        .unwrap();
        assert_eq!(c.insecure_registries, vec!["10.0.0.2:5000"]);
        assert_eq!(c.runtime_path().unwrap(), PathBuf::from("/opt/runc"));
        assert!(load(r#"{"default-runtime":"nope"}"#).is_err());
    }

    #[test]
    fn bad_label_and_level_are_errors() {
        assert!(load(r#"{"labels":["novalue"]}"#).is_err());
        assert!(load(r#"{"log-level":"loud"}"#).is_err());
    }
}
