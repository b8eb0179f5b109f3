//! Secrets at rest, end to end (issue 9, point 1 and 7): whatever the umask the
//! daemon starts under, its data dir is root's alone and the files that hold key
//! material, tokens, the Raft store and task environments are 0600, so an
//! unprivileged local user (`nobody`) reads nothing under it; and one data dir
//! serves one daemon: a second one refuses to start and names the first's pid.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rswarm_tests::{command, rswarm_bin, Cluster, Host};

/// The value a service's environment carries; it must never be readable by
/// anyone but root.
const PASSWORD: &str = "hunter2-at-rest-9f3c1e";
/// uid/gid of `nobody`.
const NOBODY: u32 = 65534;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

/// Every regular file under `dir`, not following symlinks.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// The paths among `paths` that uid/gid `nobody` can read a byte of.
fn readable_by_nobody(paths: &[PathBuf]) -> Vec<String> {
    let mut found = Vec::new();
    for chunk in paths.chunks(500) {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"for f in "$@"; do if head -c1 "$f" >/dev/null 2>&1; then echo "$f"; fi; done"#)
            .arg("sh")
            .args(chunk)
            .uid(NOBODY)
            .gid(NOBODY)
            .current_dir("/")
            .output()
            .unwrap_or_else(|e| panic!("running a shell as nobody: {e}"));
        assert!(
            out.status.success(),
            "the shell as nobody failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from),
        );
    }
    found
}

/// Makes the directories above a host's data dir traversable by anyone, so a
/// refusal can only come from the daemon's own modes.
fn open_parents(host: &Host) {
    let mut p = host.data_dir().parent();
    while let Some(dir) = p {
        if dir == Path::new("/") || dir == Path::new("/tmp") {
            break;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        p = dir.parent();
    }
}

#[test]
fn with_umask_022_nobody_reads_nothing_under_a_data_dir() {
    // The daemons inherit this process's umask: the loosest usual one.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let cluster = Cluster::with_registry(2).expect("cluster");
    cluster.init_swarm(1, 1).expect("swarm");
    let image = cluster.registry().busybox();
    let env = format!("PASSWORD={PASSWORD}");
    cluster.host(1).ok(&[
        "service", "create", "--detach", "--name", "sec", "--mode", "global", "-e", &env, &image,
        "sleep", "3600",
    ]);
    cluster.host(1).wait_running_tasks("sec", 2);

    for host in cluster.hosts() {
        let data = host.data_dir();
        assert_eq!(mode(data), 0o700, "{}: data dir mode", host.name());
        // The task's bundle holds the environment runc needs: 0600.
        let containers = host.containers();
        assert_eq!(containers.len(), 1, "{}: one task container", host.name());
        let config = PathBuf::from(&containers[0].bundle).join("config.json");
        let text = std::fs::read_to_string(&config).expect("config.json");
        assert!(
            text.contains(PASSWORD),
            "{} is the task's bundle",
            config.display()
        );
        assert_eq!(mode(&config), 0o600, "{}", config.display());
        // The daemon's umask 077 does not reach into the container: a non-root
        // process there still walks `/` and reads the /etc files the daemon wrote.
        for file in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/bin/sh"] {
            let out = host.runc(&[
                "exec",
                "--user",
                "65534:65534",
                &containers[0].id,
                "head",
                "-c1",
                file,
            ]);
            assert!(
                out.success(),
                "{}: nobody in the container reads {file}:\n{out}",
                host.name()
            );
        }
        // Key material, Raft store, node state: files 0600, directories 0700.
        for sub in ["certificates", "raft", "state.json", "rswarm.pid"] {
            let p = data.join(sub);
            if !p.exists() {
                assert!(
                    sub == "raft" && host.index() != 1,
                    "{} missing",
                    p.display()
                );
                continue;
            }
            let mut all = vec![p.clone()];
            all.extend(files_under(&p));
            for f in all {
                let m = mode(&f);
                let public_cert = f.extension().is_some_and(|e| e == "crt");
                if std::fs::symlink_metadata(&f)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
                {
                    assert_eq!(m, 0o700, "{}", f.display());
                } else if !public_cert {
                    assert_eq!(m, 0o600, "{}", f.display());
                }
            }
        }

        open_parents(host);
        // A positive control beside the data dir: nobody can read files there.
        let control = host.dir().join("control.txt");
        std::fs::write(&control, "x").expect("control file");
        std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o644))
            .expect("chmod control");
        let mut paths = files_under(data);
        assert!(
            paths.len() > 10,
            "{}: only {} files",
            host.name(),
            paths.len()
        );
        assert!(paths.contains(&config));
        paths.push(control.clone());
        let readable = readable_by_nobody(&paths);
        assert_eq!(
            readable,
            vec![control.display().to_string()],
            "{}: files nobody can read (only the control file should be)",
            host.name()
        );
    }
}

#[test]
fn a_second_daemon_on_a_data_dir_in_use_refuses_naming_the_first() {
    let cluster = Cluster::start(1).expect("cluster");
    let host = cluster.host(1);
    let first = host.pid().expect("the daemon runs");
    let argv: Vec<String> = vec![
        rswarm_bin().display().to_string(),
        "daemon".into(),
        "--data-dir".into(),
        host.data_dir().display().to_string(),
        "--socket".into(),
        host.dir().join("second.sock").display().to_string(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--node-name".into(),
        "second".into(),
    ];
    let out = command::run(&argv, &[], Duration::from_secs(60));
    assert!(!out.timed_out, "the second daemon kept running:\n{out}");
    assert_eq!(out.code(), Some(1), "{out}");
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "a one-line error:\n{out}");
    assert!(
        line.contains(&format!("(pid {first})")) && line.contains("data dir"),
        "the error names the first daemon's pid {first}:\n{out}"
    );
    // The first daemon is untouched.
    host.ok(&["info"]);
    // A lock file left by a kill -9 blocks nobody.
    host.kill();
    host.start();
    let pid = host.pid().expect("restarted");
    let written = std::fs::read_to_string(host.data_dir().join("rswarm.pid")).expect("pid file");
    assert_eq!(written.trim(), pid.to_string());
}

/// Runs of at least `min` printable bytes in `data`, as `strings` prints them.
fn printable_runs(data: &[u8], min: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for &b in data.iter().chain(std::iter::once(&0u8)) {
        if b == b'\t' || (0x20..0x7f).contains(&b) {
            run.push(b);
        } else {
            if run.len() >= min {
                out.push(String::from_utf8_lossy(&run).into_owned());
            }
            run.clear();
        }
    }
    out
}

#[test]
fn strings_over_every_data_dir_finds_no_key_token_or_secret_in_clear() {
    let cluster = Cluster::with_registry(2).expect("cluster");
    cluster.init_swarm(1, 1).expect("swarm");
    let image = cluster.registry().busybox();
    let env = format!("PASSWORD={PASSWORD}");
    let manager = cluster.host(1);
    manager.ok(&[
        "service", "create", "--detach", "--name", "sec", "--mode", "global", "-e", &env, &image,
        "sleep", "3600",
    ]);
    manager.wait_running_tasks("sec", 2);
    let worker_token = manager.ok(&["swarm", "join-token", "-q", "worker"]);
    let manager_token = manager.ok(&["swarm", "join-token", "-q", "manager"]);
    assert!(
        worker_token.trim().starts_with("SWMTKN-1-"),
        "{worker_token}"
    );
    // What an attacker would look for; the CA and node certificates are public.
    let needles: Vec<String> = vec![
        "PRIVATE KEY".into(),
        "SWMTKN-1-".into(),
        worker_token.trim().to_string(),
        manager_token.trim().to_string(),
        PASSWORD.into(),
    ];
    // Stop the daemons so sled has flushed everything it holds.
    for host in cluster.hosts() {
        host.stop();
    }
    let mut scanned = 0usize;
    let mut raft_bytes = 0u64;
    // Positive controls: the scan does see what is stored in clear on purpose
    // (the public CA certificate; the Raft membership's addresses).
    let (mut saw_cert, mut saw_addr) = (false, false);
    for host in cluster.hosts() {
        for file in files_under(host.data_dir()) {
            // A task's bundle config.json must hold the environment for runc to
            // start the process: it is 0600 in a 0700 dir (the test above), not
            // encrypted, so it is left out of the clear-text scan on purpose.
            let in_bundle = file.components().any(|c| c.as_os_str() == "containers")
                && file.file_name().is_some_and(|n| n == "config.json");
            if in_bundle {
                continue;
            }
            let Ok(data) = std::fs::read(&file) else {
                continue; // sockets, fifos and the like
            };
            if file.components().any(|c| c.as_os_str() == "raft") {
                raft_bytes += data.len() as u64;
            }
            scanned += 1;
            let in_raft = file.components().any(|c| c.as_os_str() == "raft");
            for run in printable_runs(&data, 4) {
                saw_cert |= run.contains("BEGIN CERTIFICATE");
                saw_addr |= in_raft && run.contains(manager.addr());
                for needle in &needles {
                    assert!(
                        !run.contains(needle.as_str()),
                        "{}: {} holds {needle:?} in clear text",
                        host.name(),
                        file.display()
                    );
                }
            }
        }
    }
    assert!(scanned > 20, "only {scanned} files scanned");
    assert!(saw_cert, "the scan found no certificate at all");
    assert!(
        saw_addr,
        "the scan found no manager address in the Raft store"
    );
    assert!(
        raft_bytes > 10_000,
        "the Raft store holds only {raft_bytes} bytes"
    );
    // And the encrypted store still serves everything after a restart.
    for host in cluster.hosts() {
        host.start();
    }
    manager.wait_running_tasks("sec", 2);
    let ls = manager.ok(&["node", "ls"]);
    assert!(ls.contains("host2"), "{ls}");
}

/// Docker's words for a call to a locked manager.
const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"rswarm swarm unlock\" to unlock it.";

/// The `SWMKEY-1-…` key in a command's output.
fn unlock_key_in(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no unlock key in:\n{out}"))
        .to_string()
}

/// `rswarm swarm unlock` on `host` with `key` piped to its stdin.
fn unlock_with(host: &Host, key: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(rswarm_bin())
        .args([
            "-H",
            &format!("unix://{}", host.socket().display()),
            "swarm",
            "unlock",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning swarm unlock");
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{key}").expect("writing the key");
    }
    child.wait_with_output().expect("swarm unlock")
}

/// kill -9 and start the daemon, then check it is locked.
fn restart_locked(host: &Host) {
    host.kill();
    host.start();
    let err = host.fails(&["node", "ls"]);
    assert_eq!(err.trim(), format!("Error response from daemon: {LOCKED}"));
}

fn unlock_ok(host: &Host, key: &str) {
    let out = unlock_with(host, key);
    assert!(
        out.status.success(),
        "unlock with the right key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rswarm_tests::wait_for(
        Duration::from_secs(60),
        "the unlocked manager serves",
        || {
            let out = host.rswarm(&["service", "ls", "--format", "{{.Name}}"]);
            (out.success() && out.stdout.lines().any(|l| l == "keep")).then_some(())
        },
    );
}

#[test]
fn autolock_seals_a_restarted_manager_until_unlocked() {
    let cluster = Cluster::start(1).expect("cluster");
    let host = cluster.host(1);
    let out = host.ok(&["init", "--advertise-addr", host.addr(), "--autolock"]);
    let key1 = unlock_key_in(&out);
    assert!(out.contains("rswarm swarm unlock"), "{out}");
    host.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "keep",
        "10.77.0.2:5000/none:1",
        "true",
    ]);
    assert_eq!(host.ok(&["swarm", "unlock-key", "-q"]).trim(), key1);
    // The key is never on disk: no file under the data dir holds it.
    for f in files_under(host.data_dir()) {
        let data = std::fs::read(&f).unwrap_or_default();
        assert!(
            !data.windows(key1.len()).any(|w| w == key1.as_bytes()),
            "{} holds the unlock key",
            f.display()
        );
    }

    restart_locked(host);
    let info = host.ok(&["info"]);
    assert!(info.contains("locked"), "{info}");
    let wrong = unlock_with(host, "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert!(!wrong.status.success());
    assert_eq!(
        String::from_utf8_lossy(&wrong.stderr).trim(),
        "Error response from daemon: swarm could not be unlocked: invalid key provided"
    );
    host.fails(&["node", "ls"]);
    unlock_ok(host, &key1);
    let again = unlock_with(host, &key1);
    assert!(
        !again.status.success(),
        "unlocking an unlocked swarm is refused"
    );

    // Rotation: the old key stops working, the new one works after a restart.
    let key2 = unlock_key_in(&host.ok(&["swarm", "unlock-key", "--rotate"]));
    assert_ne!(key1, key2);
    restart_locked(host);
    assert!(
        !unlock_with(host, &key1).status.success(),
        "the old key still opens"
    );
    unlock_ok(host, &key2);

    // Autolock off: a restart comes up unlocked.
    host.ok(&["swarm", "update", "--autolock=false"]);
    let err = host.fails(&["swarm", "unlock-key"]);
    assert!(err.contains("no unlock key is set"), "{err}");
    host.kill();
    host.start();
    rswarm_tests::wait_for(
        Duration::from_secs(60),
        "the manager serves unlocked",
        || {
            let out = host.rswarm(&["service", "ls", "--format", "{{.Name}}"]);
            (out.success() && out.stdout.lines().any(|l| l == "keep")).then_some(())
        },
    );
    // And on again with `swarm update --autolock`.
    let key3 = unlock_key_in(&host.ok(&["swarm", "update", "--autolock=true"]));
    restart_locked(host);
    unlock_ok(host, &key3);
}

/// How many times `host`'s daemon log says `needle` (across restarts: the
/// harness appends).
fn log_count(host: &Host, needle: &str) -> usize {
    std::fs::read_to_string(host.log_path())
        .unwrap_or_default()
        .matches(needle)
        .count()
}

const APPLIED_ON: &str = "autolock: this manager's keys now need the cluster's unlock key";
const APPLIED_OFF: &str = "autolock off: this manager's keys no longer need an unlock key";

/// Waits until `host` logs `needle` more than `before` times: it applied the
/// cluster's setting to its own keys.
fn wait_applied(host: &Host, needle: &str, before: usize) {
    rswarm_tests::wait_for(
        Duration::from_secs(60),
        &format!("{} to apply the cluster's autolock setting", host.name()),
        || (log_count(host, needle) > before).then_some(()),
    );
}

#[test]
fn autolock_is_cluster_wide_every_manager_locks_rotates_and_unlocks_with_one_key() {
    let cluster = Cluster::start(3).expect("cluster");
    cluster.init_swarm(3, 0).expect("three managers");
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "keep",
        "10.77.0.2:5000/none:1",
        "true",
    ]);

    // On from host1: the other managers lock with the same key.
    let key1 = unlock_key_in(&h1.ok(&["swarm", "update", "--autolock=true"]));
    for h in [h2, h3] {
        wait_applied(h, APPLIED_ON, 0);
        assert_eq!(h.ok(&["swarm", "unlock-key", "-q"]).trim(), key1);
    }
    restart_locked(h3);
    unlock_ok(h3, &key1);

    // Rotated on host2: host1 takes the new key; the old one no longer opens it.
    let before = log_count(h1, APPLIED_ON);
    let key2 = unlock_key_in(&h2.ok(&["swarm", "unlock-key", "--rotate"]));
    assert_ne!(key1, key2);
    wait_applied(h1, APPLIED_ON, before);
    restart_locked(h1);
    assert!(
        !unlock_with(h1, &key1).status.success(),
        "the key from before the rotation still opens host1"
    );
    unlock_ok(h1, &key2);

    // Off from host3: host2 restarts unlocked.
    h3.ok(&["swarm", "update", "--autolock=false"]);
    wait_applied(h2, APPLIED_OFF, 0);
    let err = h2.fails(&["swarm", "unlock-key"]);
    assert!(err.contains("no unlock key is set"), "{err}");
    h2.kill();
    h2.start();
    rswarm_tests::wait_for(
        Duration::from_secs(60),
        "host2 serves unlocked after a restart",
        || {
            let out = h2.rswarm(&["service", "ls", "--format", "{{.Name}}"]);
            (out.success() && out.stdout.lines().any(|l| l == "keep")).then_some(())
        },
    );
}
