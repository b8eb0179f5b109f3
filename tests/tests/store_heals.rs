//! The store heals (issue 9, point 5): a one-manager swarm whose data dir is a
//! small tmpfs runs out of space for real. `service create` then fails with one
//! line naming the full disk, `service ls` keeps answering, and once space is
//! freed `service create` works again, with the same daemon process.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rswarm_tests::Cluster;

/// Fills the filesystem of `path` with zeros (`dd` stops at "No space left
/// on device"); returns the bytes written.
fn fill(path: &Path) -> u64 {
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args(["bs=64K", "conv=fsync"])
        .output()
        .expect("run dd");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No space left on device"),
        "dd did not fill the disk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn create(name: &str) -> Vec<&str> {
    vec![
        "service",
        "create",
        "--detach",
        "--replicas",
        "0",
        "--name",
        name,
        "busybox",
    ]
}

#[test]
fn a_full_disk_fails_service_create_clearly_and_the_manager_heals_without_a_restart() {
    let cluster = Cluster::builder(1)
        .without_daemons()
        .start()
        .expect("cluster");
    let host = cluster.host(1);
    // The daemon's whole data dir on a 64 MiB tmpfs (the harness lazily unmounts
    // whatever is mounted under the cluster's directory when it is dropped).
    std::fs::create_dir_all(host.data_dir()).expect("data dir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs"])
        .arg(host.data_dir())
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mounting a tmpfs on the data dir failed");
    host.start();
    cluster.init_swarm(1, 0).expect("init");
    host.ok(&create("before"));
    let pid = host.pid().expect("daemon pid");

    let filler = host.data_dir().join("filler");
    assert!(fill(&filler) > 0, "the filler wrote nothing");

    // sled may still have room in the segments it holds: create until one fails.
    let mut failure = None;
    for i in 0..300 {
        let name = format!("full{i}");
        let out = host.rswarm(&create(&name));
        if !out.success() {
            eprintln!(
                "service create {i} after the disk filled failed: {}",
                out.stderr.trim()
            );
            failure = Some(out);
            break;
        }
    }
    let failure = failure.expect("no service create failed on a full disk");
    let stderr = failure.stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "not one line: {failure}");
    assert!(
        stderr.contains("the manager could not write to its store: no space left on device"),
        "unexpected failure on a full disk: {failure}"
    );

    // Reads keep working while the disk is full.
    let ls = host.ok(&["service", "ls"]);
    assert!(ls.contains("before"), "service ls on a full disk:\n{ls}");

    // Space is back: the same daemon takes writes again.
    std::fs::remove_file(&filler).expect("remove filler");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = host.rswarm(&create("after"));
        if out.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service create still fails 90s after space was freed: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ls = host.ok(&["service", "ls"]);
    assert!(
        ls.contains("after") && ls.contains("before"),
        "service ls after healing:\n{ls}"
    );
    assert_eq!(host.pid(), Some(pid), "the daemon was restarted");
    assert!(host.is_running(), "the daemon died");
}
