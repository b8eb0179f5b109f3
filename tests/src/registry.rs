//! A real OCI registry for a test cluster: Debian's `docker-registry` (the CNCF
//! Distribution registry 2.8), plain HTTP, reachable by every host of the cluster.
//!
//! It runs inside the cluster's switch namespace, whose bridge `br0` gets the address
//! [`REGISTRY_IP`] (`10.77.0.2/24`, on the hosts' segment), and listens on
//! [`REGISTRY_IP`]`:`[`REGISTRY_PORT`]. Its storage is the filesystem under
//! `<cluster dir>/registry/`. It is killed when the cluster is torn down (it also dies
//! with the test process, like the daemons).
//!
//! A cluster gets one with [`crate::ClusterBuilder::with_registry`] (or
//! [`crate::Cluster::with_registry`]): the registry is started before the daemons,
//! the busybox test image ([`crate::images::busybox`]) is pushed to it as `busybox:1`,
//! and every daemon is started with `--config <cluster dir>/daemon.json` holding
//! `{"insecure-registries": ["10.77.0.2:5000", "10.77.0.2:5001"]}` (the second for
//! [`Registry::start_with_auth`]), as Docker's `daemon.json` would.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::command::{self, COMMAND_TIMEOUT};
use crate::images::TestImage;
use crate::network;

/// The registry's address on the cluster network: the switch's bridge.
pub const REGISTRY_IP: &str = "10.77.0.2";
/// The registry's port.
pub const REGISTRY_PORT: u16 = 5000;
/// The port of a registry with basic auth ([`Registry::start_with_auth`]).
pub const AUTH_REGISTRY_PORT: u16 = 5001;
/// Debian's registry binary (package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// How long the registry may take to answer `GET /v2/` after it is started.
pub const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running registry; see the module docs.
#[derive(Debug)]
pub struct Registry {
    addr: String,
    netns: String,
    dir: PathBuf,
    log_path: PathBuf,
    child: Mutex<Option<Child>>,
    /// `user:password` for pushes (a registry with auth).
    creds: Option<String>,
}

impl Registry {
    /// Gives the switch's bridge [`REGISTRY_IP`] and starts the registry in the switch
    /// namespace `switch_netns`, with its config, storage and log under `dir`. Returns
    /// once it answers `GET /v2/`.
    pub(crate) fn start(switch_netns: &str, dir: &Path) -> anyhow::Result<Registry> {
        Self::start_on(switch_netns, dir, REGISTRY_PORT, None)
    }

    /// A second registry beside the cluster's, on [`REGISTRY_IP`]`:`
    /// [`AUTH_REGISTRY_PORT`], that wants HTTP basic auth (`htpasswd`: one
    /// `user:bcrypt-hash` line) and is pushed to with `user`/`password`.
    /// The cluster's registry must be running (it gives the switch its IP).
    pub fn start_with_auth(
        switch_netns: &str,
        dir: &Path,
        htpasswd: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Registry> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("htpasswd");
        std::fs::write(&path, htpasswd).with_context(|| format!("writing {}", path.display()))?;
        let mut r = Self::start_on(switch_netns, dir, AUTH_REGISTRY_PORT, Some(&path))?;
        r.creds = Some(format!("{user}:{password}"));
        Ok(r)
    }

    fn start_on(
        switch_netns: &str,
        dir: &Path,
        port: u16,
        htpasswd: Option<&Path>,
    ) -> anyhow::Result<Registry> {
        if !Path::new(REGISTRY_BIN).is_file() {
            bail!(
                "{REGISTRY_BIN} is missing: apt-get install docker-registry (see tests/packages.txt)"
            );
        }
        if htpasswd.is_none() {
            network::ip(&[
                "-n",
                switch_netns,
                "addr",
                "add",
                &format!("{REGISTRY_IP}/{}", network::SUBNET_PREFIX_LEN),
                "dev",
                "br0",
            ])?;
        }
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage)
            .with_context(|| format!("creating {}", storage.display()))?;
        let addr = format!("{REGISTRY_IP}:{port}");
        let auth = match htpasswd {
            Some(p) => format!(
                "auth:\n  htpasswd:\n    realm: rswarm-tests\n    path: {}\n",
                p.display()
            ),
            None => String::new(),
        };
        let config_path = dir.join("config.yml");
        std::fs::write(
            &config_path,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: rswarm-tests-not-a-secret\n{auth}",
                storage.display()
            ),
        )
        .with_context(|| format!("writing {}", config_path.display()))?;
        let log_path = dir.join("registry.log");
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve")
            .arg(&config_path)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        crate::spawn::enter_netns(&mut cmd, switch_netns);
        let child = crate::spawn::spawn_long_lived(cmd)
            .with_context(|| format!("starting {REGISTRY_BIN} in {switch_netns}"))?;
        let registry = Registry {
            addr,
            netns: switch_netns.to_string(),
            dir: dir.to_path_buf(),
            log_path,
            child: Mutex::new(Some(child)),
            creds: None,
        };
        registry.wait_until_serving()?;
        Ok(registry)
    }

    /// `10.77.0.2:5000`: what image references start with, and what the daemons are
    /// told is an insecure (plain HTTP) registry.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `<addr>/<name_tag>`: `registry.image("busybox:1")` is `10.77.0.2:5000/busybox:1`.
    pub fn image(&self, name_tag: &str) -> String {
        format!("{}/{name_tag}", self.addr)
    }

    /// The busybox test image as every `with_registry` cluster has it:
    /// `10.77.0.2:5000/busybox:1`.
    pub fn busybox(&self) -> String {
        self.image("busybox:1")
    }

    /// The registry's directory: config, storage and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the registry logged so far (its access log included).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The daemon config (Docker's `daemon.json` keys) that makes a daemon use this
    /// registry over plain HTTP.
    /// The registry [`Registry::start_with_auth`] starts is listed too.
    pub fn daemon_config(&self) -> serde_json::Value {
        serde_json::json!({ "insecure-registries": [
            self.addr,
            format!("{REGISTRY_IP}:{AUTH_REGISTRY_PORT}"),
        ] })
    }

    /// Pushes `image` to the registry as `name_tag` (e.g. `busybox:1`) with skopeo,
    /// converted to a Docker v2 schema 2 manifest as `docker push` makes. Returns the
    /// full reference (`10.77.0.2:5000/busybox:1`).
    pub fn push(&self, image: &TestImage, name_tag: &str) -> anyhow::Result<String> {
        self.push_as(image, name_tag, "v2s2")
    }

    /// [`Registry::push`] keeping the OCI manifest (skopeo `--format oci`).
    pub fn push_oci(&self, image: &TestImage, name_tag: &str) -> anyhow::Result<String> {
        self.push_as(image, name_tag, "oci")
    }

    fn push_as(&self, image: &TestImage, name_tag: &str, format: &str) -> anyhow::Result<String> {
        let reference = self.image(name_tag);
        let creds: Vec<String> = match &self.creds {
            Some(c) => vec!["--dest-creds".into(), c.clone()],
            None => vec![],
        };
        let mut argv: Vec<String> = [
            "nsenter",
            &format!("--net=/var/run/netns/{}", self.netns),
            "--",
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            format,
            &image.skopeo_ref(),
            &format!("docker://{reference}"),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        // Before the source and destination.
        let at = argv.len() - 2;
        argv.splice(at..at, creds);
        let out = command::run(&argv, &[], COMMAND_TIMEOUT);
        if !out.success() {
            bail!(
                "pushing {reference} failed:\n{out}\n--- registry log ---\n{}",
                tail(&self.log(), 20)
            );
        }
        Ok(reference)
    }

    /// `GET path` on the registry from inside the switch namespace: (status, body).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let addr: SocketAddr = self.addr.parse().expect("registry address");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, */*\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let response = network::in_netns(&self.netns, || -> std::io::Result<Vec<u8>> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(request.as_bytes())?;
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes)?;
            Ok(bytes)
        })
        .with_context(|| format!("GET http://{}{path}", self.addr))?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("GET {path}: not an HTTP answer: {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Kills the registry and reaps it (also done on drop).
    pub fn kill(&self) {
        let taken = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(mut child) = taken {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_until_serving(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Ok((200 | 401, _)) = self.get("/v2/") {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .as_mut()
                .map(|child| child.try_wait());
            if let Some(Ok(Some(status))) = exited {
                bail!(
                    "the registry exited while starting ({status}):\n{}",
                    tail(&self.log(), 20)
                );
            }
            if started.elapsed() > REGISTRY_START_TIMEOUT {
                bail!(
                    "the registry does not answer GET http://{}/v2/ after {REGISTRY_START_TIMEOUT:?}:\n{}",
                    self.addr,
                    tail(&self.log(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
