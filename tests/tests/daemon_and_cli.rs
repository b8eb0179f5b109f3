//! The daemon and CLI at their edges: no daemon to talk to, a bad config
//! file, bad flags, metrics, and a restart that resumes from the data dir.

use std::process::Command;
use std::time::Duration;

use rswarm_tests::{rswarm_bin, wait_for, Cluster};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(rswarm_bin())
        .args(args)
        .output()
        .expect("running rswarm")
}

#[test]
fn no_daemon_gives_one_line_naming_the_address() {
    let out = run(&["-H", "unix:///nonexistent/rswarm.sock", "node", "ls"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("unix:///nonexistent/rswarm.sock") && err.contains("rswarm daemon"),
        "{err}"
    );
}

#[test]
fn a_bad_config_file_stops_the_daemon_with_the_reason() {
    let dir = tempfile_dir();
    let cfg = dir.join("daemon.json");
    std::fs::write(&cfg, r#"{"labels": ["zone=a"], "log-levle": "debug"}"#).unwrap();
    let out = run(&[
        "daemon",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--socket",
        dir.join("s.sock").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `log-levle`") && err.contains("daemon.json"),
        "{err}"
    );
    assert!(!dir.join("s.sock").exists(), "nothing was started");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_and_values_are_refused() {
    let out = run(&["node", "ls", "--no-such-flag"]);
    assert!(!out.status.success());
    // Refused by the argument parser (naming the flag), not by a missing daemon.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--no-such-flag"), "{err}");
    let out = run(&["-H", "ftp://x", "node", "ls"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid host"));
    let out = run(&[
        "-H",
        "unix:///nonexistent/s.sock",
        "init",
        "--dispatcher-heartbeat",
        "5 parsecs",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dispatcher-heartbeat"));
}

#[test]
fn labels_from_the_config_metrics_and_a_restart_that_resumes() {
    let dir = tempfile_dir();
    let cfg = dir.join("daemon.json");
    std::fs::write(&cfg, r#"{"labels": ["zone=a"], "log-level": "info"}"#).unwrap();
    let cluster = Cluster::builder(2)
        .daemon_args(&["--config", cfg.to_str().unwrap()])
        .start()
        .unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let id = h2.node_id();
    assert_eq!(
        h1.ok(&[
            "node",
            "inspect",
            "host2",
            "--format",
            "{{.Description.Engine.Labels.zone}}"
        ])
        .trim(),
        "a"
    );
    assert_eq!(
        h1.ok(&["node", "ls", "--filter", "label=zone=a", "-q"])
            .lines()
            .count(),
        2
    );

    let scrape = |h: &rswarm_tests::Host| {
        h.exec_ok(&[
            "bash",
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9323 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
        ])
    };
    let m = scrape(h1);
    assert!(m.contains("rswarm_raft_leader 1"), "{m}");
    assert!(
        m.contains("rswarm_nodes{state=\"ready\",availability=\"active\"} 2"),
        "{m}"
    );
    let m = scrape(h2);
    assert!(
        m.contains("role=\"worker\"") && m.contains("rswarm_swarm_active 1"),
        "{m}"
    );

    h2.restart();
    assert_eq!(h2.node_id(), id, "same node ID after a restart");
    wait_for(
        Duration::from_secs(15),
        "host2 Ready after its restart",
        || {
            h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
                .contains("host2 Ready")
                .then_some(())
        },
    );
    assert!(h2.ok(&["info"]).contains("Is Manager: false"));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rsw-cli-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
