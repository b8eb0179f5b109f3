//! The secrets and configs the managers sent this node for its tasks, held
//! in this process's memory only: never written under the data dir, never
//! logged (no `Debug` shows a value). The worker applies the assignments
//! stream's secret and config changes here (a complete set replaces what is
//! held; a REMOVE forgets one, its memory zeroed); the container controller
//! turns a task's references into the files the runtime mounts on the
//! task's own tmpfs. After a daemon restart nothing is held until the
//! managers send the complete set again, which carries every secret and
//! config of the node's tasks that have not ended.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rswarm_proto::dispatcher::assignment_change::Action;
use rswarm_proto::dispatcher::AssignmentChange;
use rswarm_proto::spec::secrets::{target_path, Kind, DEFAULT_MODE};
use rswarm_proto::types::{SecretFileTarget, Task};

use crate::runtime::ContainerFile;

/// A value, zeroed when dropped; its `Debug` shows only its length.
struct Value(Vec<u8>);

impl Drop for Value {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the zeroing from being optimised away.
        std::hint::black_box(&self.0);
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

#[derive(Default, Debug)]
struct Held {
    secrets: HashMap<String, Value>,
    configs: HashMap<String, Value>,
}

/// Why a task's files cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FilesError {
    /// The managers did not send it (yet).
    #[error("{kind} {name} ({id}) is not available on this node: the managers did not send it")]
    Missing {
        kind: &'static str,
        name: String,
        id: String,
    },
    /// A reference the spec rules should have refused.
    #[error("{kind} {name}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },
}

/// The node's secrets and configs, by ID.
#[derive(Default, Debug)]
pub(crate) struct TaskFiles {
    held: Mutex<Held>,
}

impl TaskFiles {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the secret and config changes of one assignments message
    /// (task changes are ignored); a `complete` message replaces everything.
    pub(crate) fn apply(&self, complete: bool, changes: &[AssignmentChange]) {
        let mut held = self.held();
        if complete {
            *held = Held::default();
        }
        for c in changes {
            let remove = c.action == Action::Remove as i32;
            if let Some(s) = &c.secret {
                if remove {
                    held.secrets.remove(&s.id);
                } else {
                    let data = s.spec.as_ref().map(|s| s.data.clone()).unwrap_or_default();
                    held.secrets.insert(s.id.clone(), Value(data));
                }
            }
            if let Some(k) = &c.config {
                if remove {
                    held.configs.remove(&k.id);
                } else {
                    let data = k.spec.as_ref().map(|s| s.data.clone()).unwrap_or_default();
                    held.configs.insert(k.id.clone(), Value(data));
                }
            }
        }
    }

    /// How many secrets and configs are held.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let held = self.held();
        (held.secrets.len(), held.configs.len())
    }

    /// The files of `task`'s secret and config references, secrets first.
    pub(crate) fn files_for(&self, task: &Task) -> Result<Vec<ContainerFile>, FilesError> {
        let Some(c) = task.spec.as_ref().and_then(|s| s.container.as_ref()) else {
            return Ok(vec![]);
        };
        let held = self.held();
        let secrets = c.secrets.iter().map(|r| {
            (
                Kind::Secret,
                &held.secrets,
                r.secret_id.as_str(),
                r.secret_name.as_str(),
                r.file.as_ref(),
            )
        });
        let configs = c.configs.iter().map(|r| {
            (
                Kind::Config,
                &held.configs,
                r.config_id.as_str(),
                r.config_name.as_str(),
                r.file.as_ref(),
            )
        });
        secrets
            .chain(configs)
            .map(|(kind, values, id, name, file)| {
                let value = values.get(id).ok_or_else(|| FilesError::Missing {
                    kind: kind.word(),
                    name: name.to_string(),
                    id: id.to_string(),
                })?;
                file_of(kind, name, file, &value.0)
            })
            .collect()
    }

    /// [`TaskFiles::files_for`], waiting up to `patience` for what the
    /// managers have not sent yet (they send a task's files before the task,
    /// so this only waits out a reconnection).
    pub(crate) async fn wait_files_for(
        &self,
        task: &Task,
        patience: Duration,
    ) -> Result<Vec<ContainerFile>, FilesError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.files_for(task) {
                Err(FilesError::Missing { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }
}

/// One reference's file: its target (a secret's under /run/secrets unless
/// absolute, a config's under / — `target` defaults to the name), owner
/// (default root) and mode (default 0444).
fn file_of(
    kind: Kind,
    name: &str,
    file: Option<&SecretFileTarget>,
    data: &[u8],
) -> Result<ContainerFile, FilesError> {
    let invalid = |reason: String| FilesError::Invalid {
        kind: kind.word(),
        name: name.to_string(),
        reason,
    };
    let default = SecretFileTarget {
        name: name.to_string(),
        ..Default::default()
    };
    let mut f = file.cloned().unwrap_or(default);
    if f.name.is_empty() {
        f.name = name.to_string();
    }
    let id = |what: &str, v: &str| -> Result<u32, FilesError> {
        if v.is_empty() {
            return Ok(0);
        }
        v.parse::<u32>()
            .map_err(|_| invalid(format!("invalid {what} {v:?}: must be a number")))
    };
    Ok(ContainerFile {
        target: target_path(kind, &f),
        data: data.to_vec(),
        uid: id("uid", &f.uid)?,
        gid: id("gid", &f.gid)?,
        mode: if f.mode == 0 { DEFAULT_MODE } else { f.mode },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{
        Config, ConfigReference, ConfigSpec, ContainerSpec, Secret, SecretReference, SecretSpec,
        TaskSpec,
    };

    fn secret(id: &str, data: &[u8], action: Action) -> AssignmentChange {
        AssignmentChange {
            action: action as i32,
            task: None,
            secret: Some(Secret {
                id: id.into(),
                spec: Some(SecretSpec {
                    annotations: None,
                    data: data.to_vec(),
                }),
                ..Default::default()
            }),
            config: None,
        }
    }

    fn config(id: &str, data: &[u8]) -> AssignmentChange {
        AssignmentChange {
            action: Action::Update as i32,
            task: None,
            secret: None,
            config: Some(Config {
                id: id.into(),
                spec: Some(ConfigSpec {
                    annotations: None,
                    data: data.to_vec(),
                }),
                ..Default::default()
            }),
        }
    }

    fn task(secrets: Vec<SecretReference>, configs: Vec<ConfigReference>) -> Task {
        Task {
            id: "t1".into(),
            spec: Some(TaskSpec {
                container: Some(ContainerSpec {
                    secrets,
                    configs,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn target(name: &str, uid: &str, mode: u32) -> Option<SecretFileTarget> {
        Some(SecretFileTarget {
            name: name.into(),
            uid: uid.into(),
            gid: String::new(),
            mode,
        })
    }

    #[test]
    fn references_become_files_with_their_targets_owners_and_modes() {
        let files = TaskFiles::default();
        files.apply(
            true,
            &[
                secret("s1", b"hunter2", Action::Update),
                config("c1", b"conf"),
            ],
        );
        let t = task(
            vec![
                SecretReference {
                    secret_id: "s1".into(),
                    secret_name: "pw".into(),
                    file: target("pw", "1000", 0o400),
                },
                SecretReference {
                    secret_id: "s1".into(),
                    secret_name: "pw".into(),
                    file: target("/etc/pw", "", 0),
                },
            ],
            vec![ConfigReference {
                config_id: "c1".into(),
                config_name: "app.conf".into(),
                file: None,
            }],
        );
        let got = files.files_for(&t).expect("files");
        let summary: Vec<(String, &[u8], u32, u32, u32)> = got
            .iter()
            .map(|f| (f.target.clone(), f.data.as_slice(), f.uid, f.gid, f.mode))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/run/secrets/pw".into(), &b"hunter2"[..], 1000, 0, 0o400),
                ("/etc/pw".into(), &b"hunter2"[..], 0, 0, 0o444),
                ("/app.conf".into(), &b"conf"[..], 0, 0, 0o444),
            ]
        );
        // No value in debug output.
        assert!(!format!("{got:?}").contains("hunter2"));
        assert!(!format!("{files:?}").contains("hunter2"));
    }

    #[test]
    fn a_secret_not_sent_is_named_and_removed_ones_are_forgotten() {
        let files = TaskFiles::default();
        files.apply(true, &[secret("s1", b"v", Action::Update)]);
        let t = task(
            vec![SecretReference {
                secret_id: "s1".into(),
                secret_name: "pw".into(),
                file: target("pw", "0", 0o444),
            }],
            vec![],
        );
        assert!(files.files_for(&t).is_ok());
        files.apply(false, &[secret("s1", b"", Action::Remove)]);
        assert_eq!(files.counts(), (0, 0));
        assert_eq!(
            files.files_for(&t).unwrap_err().to_string(),
            "secret pw (s1) is not available on this node: the managers did not send it"
        );
        // A complete set replaces what was held.
        files.apply(false, &[secret("s2", b"v", Action::Update)]);
        files.apply(true, &[config("c1", b"x")]);
        assert_eq!(files.counts(), (0, 1));
    }

    #[tokio::test]
    async fn waiting_gives_up_with_the_reason() {
        let files = TaskFiles::default();
        let t = task(
            vec![SecretReference {
                secret_id: "s9".into(),
                secret_name: "db".into(),
                file: None,
            }],
            vec![],
        );
        let e = files
            .wait_files_for(&t, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, FilesError::Missing { .. }), "{e}");
    }
}
