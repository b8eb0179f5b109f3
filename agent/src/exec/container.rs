//! The container controller: a task's container spec plus its image's
//! config become a runtime `ContainerConfig` (command and entrypoint, env,
//! user, workdir, hostname templates, mounts, limits, what is kept of its
//! output from its log driver), run by the runtime.
//! Image pulls go through the image store; failures to pull or to set up
//! mounts reject the task with the reason a user needs (a missing bind
//! source, a missing external volume). Named volumes come from the node's
//! volume store (made there when missing, filled with the image's content
//! unless `volume-nocopy`); a task's anonymous volumes go with the task. Once a task's
//! process has ended (it exited, or was stopped), its networking goes (DNS,
//! VIP and published-port rules, namespace), as Docker disconnects a stopped
//! container: a stopped task must not stay a backend of its host-mode ports.
//! The stopped container itself stays, for its logs, until it is removed.
//! Health probes run in the container (`probe`). A task on networks is
//! drained before it is stopped, whether the manager stops it or it turned
//! unhealthy: `drain` waits until the node's data plane no longer has it as
//! a backend, then a margin for the other nodes. A task's secrets and configs come from
//! the node's in-memory `taskfiles` and go on the container's own tmpfs
//! (the runtime's `files`); a task whose secret this node was not sent is
//! rejected with that reason, never started without it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::types::{mount::Type as MountType, Task};

use super::{health, probe, Controller, ExecError, Existing, Exit};
use crate::image::{ImageStore, LocalImage, PullAuth};
use crate::runtime::{
    ContainerConfig, ContainerStatus as RtStatus, LogPolicy, MountConfig, MountKind, Runtime,
};

/// The longest a task waits to leave its load balancers before its stop
/// signal. The network state that takes it out follows the same store
/// change as the stop (or comes right after the agent's "unhealthy"
/// report) and normally arrives within tens of milliseconds; this bound
/// only matters when it does not come at all (no leader, a lost stream),
/// and a stop must then not wait long.
const DRAIN_WAIT: Duration = Duration::from_secs(3);
/// Time given, once this node no longer has the task as a backend, before
/// the stop signal. This node cannot see the others' data plane, so the
/// margin covers what separates them from this one: the leader sends the
/// same network state to every node at once (folded for 25 ms), and a node
/// applies it in one nftables transaction per namespace whose rules
/// changed, a few milliseconds each, so the other nodes are normally done
/// well within 100 ms; and requests already in flight to the task when the
/// rules changed (conntrack keeps them on it) finish, if short. Longer
/// requests are the application's to finish after the stop signal, within
/// its stop grace period. 300 ms is about three times the usual spread on a
/// loaded node, and small beside Docker's 10 s grace period. Drains of
/// different tasks run at once (one driver per task), so `service rm` of
/// many tasks takes the margin once, not once per task.
pub(crate) const DRAIN_MARGIN: Duration = Duration::from_millis(300);

/// Default stop grace period (Docker's: 10 s).
pub(crate) const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Facts about the node a task's hostname template may use.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeFacts {
    pub node_id: String,
    pub hostname: String,
}

pub(crate) struct ContainerController {
    pub images: Arc<ImageStore>,
    pub runtime: Arc<Runtime>,
    /// This node's named volumes (`<data-dir>/volumes/<name>/_data`).
    pub volumes: Arc<crate::volumes::VolumeStore>,
    pub node: NodeFacts,
    /// Host resolver configuration given to containers.
    pub resolv_conf: String,
    /// Image references used by this node's containers (container id → reference),
    /// so `image rm` can refuse images in use.
    pub in_use: Arc<std::sync::Mutex<HashMap<String, String>>>,
    /// Overlay networking; tasks on networks need it.
    pub netplane: Option<Arc<crate::netplane::NetPlane>>,
    /// The secrets and configs the managers sent for this node's tasks.
    pub files: Arc<crate::taskfiles::TaskFiles>,
    /// Container start latency is observed there.
    pub metrics: crate::metrics::AgentMetrics,
}

/// How long a task waits for a secret or config the managers have not sent.
const FILES_PATIENCE: Duration = Duration::from_secs(10);

/// A task's runtime config and the volumes to fill from its image
/// (target in the container, volume folder).
type Prepared = (ContainerConfig, Vec<(String, PathBuf)>);

/// The container of a task is named after the task.
pub(crate) fn container_id(task: &Task) -> &str {
    &task.id
}

/// Expand Swarm's hostname templates: {{.Task.Slot}}, {{.Task.ID}},
/// {{.Task.Name}}, {{.Service.Name}}, {{.Service.ID}}, {{.Node.ID}},
/// {{.Node.Hostname}}.
pub(crate) fn expand_template(template: &str, task: &Task, node: &NodeFacts) -> String {
    let service_name = task
        .service_annotations
        .as_ref()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let task_name = task
        .annotations
        .as_ref()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let vars: [(&str, String); 7] = [
        (".Task.Slot", task.slot.to_string()),
        (".Task.ID", task.id.clone()),
        (".Task.Name", task_name),
        (".Service.Name", service_name),
        (".Service.ID", task.service_id.clone()),
        (".Node.ID", node.node_id.clone()),
        (".Node.Hostname", node.hostname.clone()),
    ];
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = rest[start + 2..start + end].trim();
        match vars.iter().find(|(k, _)| *k == inner) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Entrypoint/cmd as Docker combines them: the spec's command replaces the
/// image's entrypoint (and drops its cmd), the spec's args replace its cmd.
pub(crate) fn process_args(
    spec_command: &[String],
    spec_args: &[String],
    image: &LocalImage,
) -> Vec<String> {
    let entrypoint: Vec<String> = if spec_command.is_empty() {
        image.config.entrypoint.clone()
    } else {
        spec_command.to_vec()
    };
    let cmd: Vec<String> = if !spec_args.is_empty() {
        spec_args.to_vec()
    } else if spec_command.is_empty() {
        image.config.cmd.clone()
    } else {
        vec![]
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// Image env first, the spec's env overriding by key.
pub(crate) fn merge_env(image_env: &[String], spec_env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut index: HashMap<String, usize> = HashMap::new();
    for e in image_env.iter().chain(spec_env.iter()) {
        let key = e.split_once('=').map(|(k, _)| k).unwrap_or(e).to_string();
        match index.get(&key) {
            Some(i) => out[*i] = e.clone(),
            None => {
                index.insert(key, out.len());
                out.push(e.clone());
            }
        }
    }
    if !index.contains_key("PATH") {
        out.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    out
}

/// What the runtime keeps of a task's output, from its log driver (the
/// spec's rules: `rswarm_proto::spec::logging`).
pub(crate) fn log_policy(
    driver: Option<&rswarm_proto::types::Driver>,
) -> Result<LogPolicy, rswarm_proto::spec::ValueError> {
    use rswarm_proto::spec::logging::{settings, LogSettings};
    Ok(match settings(driver)? {
        LogSettings::Files {
            max_size,
            max_files,
            compress,
        } => LogPolicy::Files {
            max_size,
            max_files,
            compress,
        },
        LogSettings::Discard => LogPolicy::Discard,
    })
}

impl ContainerController {
    fn rejected(e: impl std::fmt::Display) -> ExecError {
        ExecError::Rejected(e.to_string())
    }

    /// The runtime config of `task`, and the volumes that get the image's
    /// content at their target once the container exists (target, folder).
    fn config(&self, task: &Task, image: &LocalImage) -> Result<Prepared, ExecError> {
        let spec = task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .ok_or_else(|| Self::rejected("task has no container spec"))?;
        let args = process_args(&spec.command, &spec.args, image);
        if args.is_empty() {
            return Err(Self::rejected(format!(
                "no command specified: image {} has neither entrypoint nor cmd",
                spec.image
            )));
        }
        let hostname = if spec.hostname.is_empty() {
            container_id(task).chars().take(12).collect()
        } else {
            expand_template(&spec.hostname, task, &self.node)
        };
        let mut mounts = vec![];
        let mut copies = vec![];
        for m in &spec.mounts {
            let kind = MountType::try_from(m.r#type).unwrap_or(MountType::Bind);
            let mc = match kind {
                MountType::Bind => {
                    if !std::path::Path::new(&m.source).exists() {
                        return Err(Self::rejected(format!("invalid mount config for type \"bind\": bind source path does not exist: {}", m.source)));
                    }
                    MountConfig {
                        kind: MountKind::Bind,
                        source: PathBuf::from(&m.source),
                        target: m.target.clone(),
                        read_only: m.read_only,
                        tmpfs_size: 0,
                        tmpfs_mode: 0,
                    }
                }
                MountType::Volume => {
                    let (name, labels) = if m.source.is_empty() {
                        // An anonymous volume: the task's own, removed with it.
                        let mut l = std::collections::BTreeMap::new();
                        l.insert(crate::volumes::ANONYMOUS_LABEL.to_string(), task.id.clone());
                        (crate::volumes::anonymous_name(&task.id, &m.target), l)
                    } else {
                        let l = m.volume_labels.clone().into_iter().collect();
                        (m.source.clone(), l)
                    };
                    let (volume, _) = self
                        .volumes
                        .claim(&name, &labels, m.volume_external, &task.id)
                        .map_err(Self::rejected)?;
                    if !m.volume_nocopy {
                        copies.push((m.target.clone(), volume.mountpoint.clone()));
                    }
                    MountConfig {
                        kind: MountKind::Volume,
                        source: volume.mountpoint,
                        target: m.target.clone(),
                        read_only: m.read_only,
                        tmpfs_size: 0,
                        tmpfs_mode: 0,
                    }
                }
                MountType::Tmpfs => MountConfig {
                    kind: MountKind::Tmpfs,
                    source: PathBuf::new(),
                    target: m.target.clone(),
                    read_only: m.read_only,
                    tmpfs_size: m.tmpfs_size_bytes,
                    tmpfs_mode: m.tmpfs_mode,
                },
            };
            mounts.push(mc);
        }
        let log = log_policy(task.spec.as_ref().and_then(|s| s.log_driver.as_ref()))
            .map_err(Self::rejected)?;
        let limits = task
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.limits)
            .unwrap_or_default();
        let cfg = ContainerConfig {
            id: container_id(task).to_string(),
            layers: image.layers.clone(),
            args,
            env: merge_env(&image.config.env, &spec.env),
            cwd: if spec.dir.is_empty() {
                if image.config.working_dir.is_empty() {
                    "/".into()
                } else {
                    image.config.working_dir.clone()
                }
            } else {
                spec.dir.clone()
            },
            user: if spec.user.is_empty() {
                image.config.user.clone()
            } else {
                spec.user.clone()
            },
            groups: spec.groups.clone(),
            hostname,
            mounts,
            read_only_rootfs: spec.read_only,
            tty: spec.tty,
            open_stdin: spec.open_stdin,
            nano_cpus: limits.nano_cpus,
            memory_bytes: limits.memory_bytes,
            pids_limit: limits.pids,
            ulimits: spec
                .ulimits
                .iter()
                .map(|u| (u.name.clone(), u.soft.max(0) as u64, u.hard.max(0) as u64))
                .collect(),
            sysctls: spec.sysctls.clone().into_iter().collect(),
            cap_add: spec.cap_add.clone(),
            cap_drop: spec.cap_drop.clone(),
            init: spec.init,
            hosts: super::resolv::extra_hosts(&spec.hosts),
            resolv_conf: super::resolv::resolv_conf(
                &self.resolv_conf,
                spec.dns_config.as_ref(),
                false,
            ),
            netns: None,
            labels: spec.labels.clone().into_iter().collect(),
            files: vec![],
            log,
        };
        Ok((cfg, copies))
    }

    /// The container of `task`: volumes claimed, networking prepared, the
    /// container created, then the image's content copied into empty volumes.
    async fn prepare_container(&self, task: &Task, image: &LocalImage) -> Result<(), ExecError> {
        let (mut cfg, copies) = self.config(task, image)?;
        cfg.files = self
            .files
            .wait_files_for(task, FILES_PATIENCE)
            .await
            .map_err(Self::rejected)?;
        match &self.netplane {
            Some(plane) => {
                cfg.netns = plane.prepare_task(task).await.map_err(Self::rejected)?;
                if !task.networks.is_empty() {
                    let dns = task
                        .spec
                        .as_ref()
                        .and_then(|s| s.container.as_ref())
                        .and_then(|c| c.dns_config.as_ref());
                    cfg.resolv_conf = super::resolv::resolv_conf("", dns, true);
                }
            }
            None if !task.networks.is_empty() => {
                return Err(Self::rejected("this node has no overlay data plane"));
            }
            None => {}
        }
        let began = std::time::Instant::now();
        self.runtime.create(&cfg).await.map_err(Self::rejected)?;
        self.metrics
            .container_created(container_id(task), began.elapsed());
        let rootfs = self.runtime.rootfs(&cfg.id);
        for (target, data) in copies {
            let (root, at) = (rootfs.clone(), target.clone());
            let copied = tokio::task::spawn_blocking(move || {
                crate::volumes::copy_image_content(&root, &at, &data).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = copied {
                return Err(Self::rejected(format!(
                    "copying the image's content at {target} into its volume: {e}"
                )));
            }
        }
        Ok(())
    }

    /// The task's anonymous volumes go with it (as Swarm removes a task's
    /// container with its volumes).
    fn remove_anonymous_volumes(&self, task: &Task) {
        let mounts = task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.mounts.as_slice())
            .unwrap_or_default();
        for m in mounts {
            if m.r#type() == MountType::Volume && m.source.is_empty() {
                let name = crate::volumes::anonymous_name(&task.id, &m.target);
                if let Err(e) = self.volumes.remove(&name, true, &self.runtime) {
                    tracing::warn!(task = %task.id, volume = %name, error = %e, "removing an anonymous volume");
                }
            }
        }
    }

    /// The task's process has ended: its networking is let go.
    async fn release_network(&self, task: &Task) {
        if let Some(plane) = &self.netplane {
            plane.release_task(container_id(task)).await;
        }
    }

    fn stop_signal(&self, task: &Task) -> String {
        let spec = task.spec.as_ref().and_then(|s| s.container.as_ref());
        if let Some(sig) = spec
            .map(|c| c.stop_signal.clone())
            .filter(|s| !s.is_empty())
        {
            return sig;
        }
        spec.and_then(|c| self.images.get(&c.image))
            .and_then(|i| i.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into())
    }

    fn grace(task: &Task) -> Duration {
        let ns = task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.stop_grace_period_ns)
            .unwrap_or(0);
        rswarm_proto::spec::units::nanos_or(ns, DEFAULT_STOP_GRACE)
    }
}

#[tonic::async_trait]
impl Controller for ContainerController {
    async fn prepare(&self, task: &Task) -> Result<(), ExecError> {
        let container = task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .ok_or_else(|| Self::rejected("task has no container spec"))?;
        let image_ref = container.image.clone();
        // `--with-registry-auth`: the credentials came with the task.
        let auth = container
            .pull_options
            .as_ref()
            .filter(|p| !p.registry_auth.is_empty())
            .map(|p| PullAuth::decode(&p.registry_auth))
            .transpose()
            .map_err(Self::rejected)?;
        let image = self
            .images
            .ensure_with(&image_ref, auth.as_ref())
            .await
            .map_err(Self::rejected)?;
        if let Ok(mut m) = self.in_use.lock() {
            m.insert(container_id(task).to_string(), image.reference.clone());
        }
        let prepared = self.prepare_container(task, &image).await;
        self.volumes.release(&task.id);
        prepared
    }

    async fn start(&self, task: &Task) -> Result<u32, ExecError> {
        let began = std::time::Instant::now();
        let res = self.runtime.start(container_id(task)).await;
        match &res {
            Ok(_) => self
                .metrics
                .container_started(container_id(task), began.elapsed()),
            Err(_) => self.metrics.container_gone(container_id(task)),
        }
        res.map_err(|e| ExecError::Failed(e.to_string()))
    }

    async fn wait(&self, task: &Task) -> Result<Exit, ExecError> {
        let s = self
            .runtime
            .wait(container_id(task))
            .await
            .map_err(|e| ExecError::Failed(e.to_string()))?;
        self.release_network(task).await;
        Ok(Exit {
            code: s.code,
            oom_killed: s.oom_killed,
        })
    }

    async fn shutdown(&self, task: &Task) -> Result<(), ExecError> {
        self.runtime
            .stop(
                container_id(task),
                &self.stop_signal(task),
                Self::grace(task),
            )
            .await
            .map_err(|e| ExecError::Failed(e.to_string()))?;
        self.release_network(task).await;
        Ok(())
    }

    async fn remove(&self, task: &Task) -> Result<(), ExecError> {
        self.metrics.container_gone(container_id(task));
        self.runtime
            .remove(container_id(task))
            .await
            .map_err(|e| ExecError::Failed(e.to_string()))?;
        let _ = self.runtime.remove_logs(container_id(task));
        if let Ok(mut m) = self.in_use.lock() {
            m.remove(container_id(task));
        }
        self.remove_anonymous_volumes(task);
        if let Some(plane) = &self.netplane {
            plane.release_task(container_id(task)).await;
        }
        Ok(())
    }

    async fn inspect(&self, task: &Task) -> Result<Option<Existing>, ExecError> {
        match self.runtime.state(container_id(task)).await {
            Ok(s) => {
                // A container that outlived an agent restart gets its DNS and
                // rules back.
                if s.status == RtStatus::Running {
                    if let Some(plane) = &self.netplane {
                        if let Err(e) = plane.restore_task(task).await {
                            tracing::warn!(task = %task.id, error = %e, "restoring networking");
                        }
                    }
                }
                Ok(Some(match s.status {
                    RtStatus::Created => Existing::Created,
                    RtStatus::Running | RtStatus::Paused => Existing::Running { pid: s.pid },
                    RtStatus::Stopped => Existing::Stopped,
                }))
            }
            Err(crate::runtime::RuntimeError::NotFound(_)) => Ok(None),
            Err(e) => Err(ExecError::Failed(e.to_string())),
        }
    }

    fn health_check(&self, task: &Task) -> Option<health::Check> {
        let spec = task.spec.as_ref().and_then(|s| s.container.as_ref())?;
        let image = self.images.get(&spec.image);
        let config = image.map(|i| i.config.clone()).unwrap_or_default();
        health::effective(spec.healthcheck.as_ref(), &config)
    }

    async fn probe(&self, task: &Task, args: &[String], timeout: Duration) -> health::Probe {
        probe::run(&self.runtime, container_id(task), args, timeout).await
    }

    async fn drain(&self, task: &Task) {
        if let Some(plane) = &self.netplane {
            if !task.networks.is_empty() {
                let started = std::time::Instant::now();
                plane.wait_not_backend(&task.id, DRAIN_WAIT).await;
                tracing::debug!(task = %task.id, waited = ?started.elapsed(), "out of the load balancers");
                // The other nodes apply the same picture at about the same time.
                tokio::time::sleep(DRAIN_MARGIN).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::Annotations;

    #[test]
    fn hostname_templates_expand() {
        let task = Task {
            id: "abc".into(),
            slot: 3,
            service_id: "svc".into(),
            service_annotations: Some(Annotations {
                name: "web".into(),
                labels: Default::default(),
            }),
            ..Default::default()
        };
        let node = NodeFacts {
            node_id: "n1".into(),
            hostname: "host1".into(),
        };
        assert_eq!(
            expand_template("{{.Service.Name}}-{{ .Task.Slot }}", &task, &node),
            "web-3"
        );
        assert_eq!(
            expand_template("{{.Node.Hostname}}.{{.Unknown}}", &task, &node),
            "host1.{{.Unknown}}"
        );
        assert_eq!(expand_template("plain", &task, &node), "plain");
    }

    #[test]
    fn env_merges_by_key() {
        let env = merge_env(
            &["PATH=/bin".into(), "A=1".into()],
            &["A=2".into(), "B=3".into()],
        );
        assert_eq!(env, vec!["PATH=/bin", "A=2", "B=3"]);
    }
}
