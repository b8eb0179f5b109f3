//! The containers a host's daemon runs, seen from the machine, and their removal at
//! teardown.
//!
//! The daemons run tasks with `runc --root <data-dir>/runc`, bundles under
//! `<data-dir>/containers/<id>/`. A container outlives its daemon (live restore), so
//! killing the daemons at teardown leaves them running: [`remove_all`] kills and
//! deletes every container in a runc root (`runc kill <id> KILL`, `runc delete
//! --force <id>`), then removes what is left of their cgroups (`/sys/fs/cgroup/<
//! controller>/rswarm/…/<id>`, killing any process still in one first).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::command::{self, CmdOutput, COMMAND_TIMEOUT};

/// The runc binary the daemons use by default.
pub const RUNC: &str = "runc";

/// One container as `runc list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// runc's container ID.
    pub id: String,
    /// The container's init process on the machine (0 when stopped).
    pub pid: u32,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The bundle directory.
    pub bundle: String,
}

/// The runc root of a daemon whose `--data-dir` is `data_dir`.
pub fn runc_root(data_dir: &Path) -> PathBuf {
    data_dir.join("runc")
}

/// Runs `runc --root ROOT ARGS`.
pub fn runc(root: &Path, args: &[&str]) -> CmdOutput {
    let argv: Vec<String> = [RUNC, "--root", &root.display().to_string()]
        .iter()
        .map(|a| a.to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    command::run(&argv, &[], COMMAND_TIMEOUT)
}

/// Whether `runc list` failed only because a container went away while it listed.
fn deleted_while_listing(stderr: &str) -> bool {
    stderr.contains("container does not exist") || stderr.contains("no such file or directory")
}

/// The containers in runc root `root` (none if the root does not exist). Panics when
/// runc fails or prints something else than its JSON list.
pub fn list(root: &Path) -> Vec<Container> {
    try_list(root).unwrap_or_else(|err| panic!("{err:#}"))
}

/// [`list`] returning an error instead of panicking.
///
/// `runc list` reads the root's directory and then each container's state, so a
/// container the daemon deletes between the two makes it fail ("container does not
/// exist", "stat …: no such file or directory"). That is a race in the listing, not
/// a fault of the daemon: the list is taken again, up to five times, before failing.
pub fn try_list(root: &Path) -> anyhow::Result<Vec<Container>> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 0;
    let out = loop {
        if !root.exists() {
            return Ok(Vec::new());
        }
        attempt += 1;
        let out = runc(root, &["list", "--format", "json"]);
        if out.success() {
            break out;
        }
        if attempt >= ATTEMPTS || !deleted_while_listing(&out.stderr) {
            anyhow::bail!("runc list failed (attempt {attempt}):\n{out}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = out.stdout.trim();
    if text.is_empty() || text == "null" {
        return Ok(Vec::new());
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| anyhow::anyhow!("runc list printed no JSON ({err}):\n{out}"))?;
    let containers = value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| Container {
                    id: item["id"].as_str().unwrap_or_default().to_string(),
                    pid: item["pid"].as_u64().unwrap_or(0) as u32,
                    status: item["status"].as_str().unwrap_or_default().to_string(),
                    bundle: item["bundle"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(containers)
}

/// Kills and deletes every container of the daemon whose data dir is `data_dir`, and
/// removes their leftover cgroups. Returns what could not be removed (for a message);
/// never panics (it runs in teardown).
pub fn remove_all(data_dir: &Path) -> Vec<String> {
    let root = runc_root(data_dir);
    let mut problems = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    if root.exists() {
        let listed = runc(&root, &["list", "--quiet"]);
        if !listed.success() {
            problems.push(format!("runc list failed:\n{listed}"));
        }
        ids.extend(listed.stdout.split_whitespace().map(str::to_string));
        for id in &ids {
            let _ = runc(&root, &["kill", id, "KILL"]);
            let deleted = runc(&root, &["delete", "--force", id]);
            if !deleted.success() && runc(&root, &["state", id]).success() {
                problems.push(format!("runc delete --force {id} failed:\n{deleted}"));
            }
        }
    }
    // Bundles whose runc state is gone (a daemon killed half-way) may still have a
    // cgroup with processes in it.
    if let Ok(entries) = std::fs::read_dir(data_dir.join("containers")) {
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    for id in &ids {
        for cgroup in cgroups_named(id) {
            if let Err(err) = remove_cgroup(&cgroup) {
                problems.push(format!("cgroup {}: {err}", cgroup.display()));
            }
        }
    }
    problems
}

/// Cgroup directories named `id` below an `rswarm` cgroup of any hierarchy:
/// `/sys/fs/cgroup/<controller>/rswarm/<id>` (v1), `/sys/fs/cgroup/rswarm/<id>` (v2),
/// and one level deeper (`…/rswarm/<parent>/<id>`).
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Vec::new();
    }
    let base = Path::new("/sys/fs/cgroup");
    let mut parents = vec![base.join("rswarm")];
    if let Ok(entries) = std::fs::read_dir(base) {
        parents.extend(entries.flatten().map(|e| e.path().join("rswarm")));
    }
    let mut found = Vec::new();
    for parent in parents.iter().filter(|p| p.is_dir()) {
        let direct = parent.join(id);
        if direct.is_dir() {
            found.push(direct);
        }
        if let Ok(entries) = std::fs::read_dir(parent) {
            for entry in entries.flatten() {
                let nested = entry.path().join(id);
                if nested.is_dir() {
                    found.push(nested);
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Kills every process in `cgroup` and below (SIGKILL), then removes the cgroup
/// directories, deepest first.
fn remove_cgroup(cgroup: &Path) -> std::io::Result<()> {
    let mut dirs = Vec::new();
    collect_dirs(cgroup, &mut dirs);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut alive = false;
        for dir in &dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                alive = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !alive || Instant::now() > deadline {
            break;
        }
        // A frozen cgroup (v1 freezer) keeps its processes from dying: thaw it.
        for dir in &dirs {
            let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
            let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for dir in &dirs {
        for _attempt in 0..50 {
            match std::fs::remove_dir(dir) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
    }
    match dirs.iter().find(|dir| dir.exists()) {
        Some(stuck) => Err(std::io::Error::other(format!(
            "{} cannot be removed",
            stuck.display()
        ))),
        None => Ok(()),
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}
