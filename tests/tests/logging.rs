//! Task log drivers end to end on one host with real runc containers (the
//! busybox image loaded with `image load`, no registry): `--log-opt
//! max-size/max-file` rotate the task's log files on the node and `service
//! logs` reads the newest lines across them in order (the `local` driver
//! gzipping the rotated ones); `--log-driver none`
//! keeps nothing, never blocks a chatty task, and `service logs` says so in
//! Docker's words; a driver rswarm does not have is refused at create.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use rswarm_tests::lists::{wait_tasks, Task};
use rswarm_tests::{images, wait_for, Cluster, Host};

/// How long a service may take to converge (scheduling, runc).
const CONVERGE: Duration = Duration::from_secs(60);
const IMAGE: &str = "loaded/busybox:1";

fn running(h1: &Host, service: &str) -> Task {
    let tasks = wait_tasks(h1, service, CONVERGE, &format!("{service} running"), |t| {
        t.iter().any(|t| t.is_running())
    });
    tasks
        .into_iter()
        .find(|t| t.is_running())
        .expect("a running task")
}

/// The log files in the task's directory on the node, with size and mode.
fn log_files(h1: &Host, task: &Task) -> Vec<(String, u64, u32)> {
    let dir: PathBuf = h1.data_dir().join("containers").join(&task.id);
    let mut files: Vec<(String, u64, u32)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().ok()?;
            name.starts_with("log.jsonl")
                .then(|| (name, meta.len(), meta.permissions().mode() & 0o777))
        })
        .collect();
    files.sort();
    files
}

/// Waits until `service logs SERVICE` shows "line 400", then checks the
/// lines are the newest ones, in order, with no gap and the oldest dropped;
/// returns how many there are.
fn newest_lines_in_order(h1: &Host, service: &str) -> usize {
    let logs = wait_for(
        CONVERGE,
        &format!("line 400 in `service logs {service}`"),
        || {
            let out = h1.ok(&["service", "logs", "--raw", service]);
            out.lines().any(|l| l == "line 400").then_some(out)
        },
    );
    let numbers: Vec<u32> = logs
        .lines()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?} in:\n{logs}"))
        })
        .collect();
    let first = numbers[0];
    assert!(first > 1, "the oldest lines were dropped:\n{logs}");
    let expected: Vec<u32> = (first..=400).collect();
    assert_eq!(numbers, expected, "the newest lines, in order, no gap");
    numbers.len()
}

#[test]
fn log_options_rotate_on_the_node_and_none_keeps_nothing() {
    let cluster = Cluster::start(1).expect("one host");
    cluster.init_swarm(1, 0).expect("a one-node swarm");
    let h1 = cluster.host(1);
    let archive = cluster.dir().join("busybox.tar");
    images::busybox()
        .write_docker_archive(&archive, IMAGE)
        .expect("a docker-save archive");
    h1.ok(&["image", "load", "-i", archive.to_str().unwrap()]);

    // A driver rswarm does not have: refused at create, nothing stored.
    let out = h1.rswarm(&[
        "service",
        "create",
        "--detach",
        "--name",
        "sys",
        "--log-driver",
        "syslog",
        IMAGE,
        "true",
    ]);
    assert!(!out.success(), "{out}");
    assert_eq!(
        out.stderr.trim(),
        "logging driver \"syslog\" is not supported: rswarm keeps task logs on the node (json-file, local or none)",
        "{out}"
    );
    assert_eq!(h1.ok(&["service", "ls", "-q"]).trim(), "");

    // 2k × 3 files: the oldest lines go, the newest are read back in order.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line $i; done; exec sleep 100000",
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "packed",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=2k",
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line $i; done; exec sleep 100000",
    ]);
    // `--none` drains: 4 MB is more than a pipe holds, so `/done` appears
    // only if the output is read.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        IMAGE,
        "sh",
        "-c",
        "yes 0123456789abcdef | head -c 4000000; echo ok > /done; exec sleep 100000",
    ]);
    assert_eq!(
        h1.ok(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.LogDriver}}",
            "chatty"
        ])
        .trim(),
        r#"{"Name":"json-file","Options":{"max-file":"3","max-size":"2k"}}"#
    );

    let chatty = running(h1, "chatty");
    newest_lines_in_order(h1, "chatty");

    let files = log_files(h1, &chatty);
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        ["log.jsonl", "log.jsonl.1", "log.jsonl.2"],
        "{files:?}"
    );
    for (name, size, mode) in &files {
        assert!(*size <= 2000, "{name} is {size} bytes: {files:?}");
        assert_eq!(*mode, 0o600, "{name}: {files:?}");
    }

    // `local`: 5 files by default, the rotated ones gzipped.
    let packed = running(h1, "packed");
    let lines = newest_lines_in_order(h1, "packed");
    let files = wait_for(CONVERGE, "the rotated files compressed", || {
        let files = log_files(h1, &packed);
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        (names
            == [
                "log.jsonl",
                "log.jsonl.1.gz",
                "log.jsonl.2.gz",
                "log.jsonl.3.gz",
                "log.jsonl.4.gz",
            ])
        .then_some(files)
    });
    assert!(files.iter().all(|f| f.2 == 0o600), "{files:?}");
    assert!(
        lines > 3 * 36,
        "five files keep more than three: {lines} lines"
    );

    let quiet = running(h1, "quiet");
    wait_for(CONVERGE, "the none-logged task got past its output", || {
        let out = h1.rswarm(&["exec", "quiet.1", "cat", "/done"]);
        (out.success() && out.stdout.trim() == "ok").then_some(())
    });
    assert!(
        log_files(h1, &quiet).is_empty(),
        "{:?}",
        log_files(h1, &quiet)
    );
    let out = h1.rswarm(&["service", "logs", "quiet"]);
    assert!(!out.success(), "{out}");
    assert_eq!(
        out.stderr.trim(),
        "Error response from daemon: configured logging driver does not support reading",
        "{out}"
    );
}
