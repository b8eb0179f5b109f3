//! The harness's own self-test: the network a cluster is made of, the daemon
//! lifecycle (with a stand-in binary, so it does not need the product), and that
//! nothing outlives a cluster, even when the test process dies.

use std::process::Command;
use std::time::Duration;

use rswarm_tests::{wait_for, Cluster};

/// The stand-in for `rswarm` (tests/src/bin/fake-rswarm.rs).
const FAKE_RSWARM: &str = env!("CARGO_BIN_EXE_fake-rswarm");

/// What is left on the machine of the cluster named `name`: namespaces and directory.
fn leftovers_of(name: &str) -> Vec<String> {
    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let mut left: Vec<String> = String::from_utf8_lossy(&namespaces.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|ns| ns.starts_with(name))
        .map(|ns| format!("namespace {ns}"))
        .collect();
    let dir = format!("/tmp/{name}");
    if std::path::Path::new(&dir).exists() {
        left.push(format!("directory {dir}"));
    }
    left
}

#[test]
fn hosts_reach_each_other_until_a_cable_is_pulled() {
    let cluster = Cluster::network_only(3).expect("a three-host network");
    let name = cluster.name().to_string();
    let (host1, host2, host3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    assert_eq!(
        [host1.addr(), host2.addr(), host3.addr()],
        ["10.77.0.11", "10.77.0.12", "10.77.0.13"]
    );

    // Commands run inside the host: it sees its own address and no way off the segment.
    let addresses = host2.exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addresses.contains("10.77.0.12/24"), "{addresses}");
    let routes = host2.exec_ok(&["ip", "route"]);
    assert!(
        !routes.contains("default"),
        "a test host must have no default route:\n{routes}"
    );

    let _listeners: Vec<_> = cluster.hosts().iter().map(|h| h.listen_tcp(7000)).collect();
    let reaches = |from: &rswarm_tests::Host, to: &rswarm_tests::Host| {
        from.tcp_connects(&format!("{}:7000", to.addr()), Duration::from_secs(1))
    };
    for from in cluster.hosts() {
        for to in cluster.hosts() {
            assert!(
                reaches(from, to),
                "{} cannot reach {}",
                from.name(),
                to.name()
            );
        }
    }
    // The same through a shell in the namespace (what a test's `exec` would do).
    let bash_connect = host1.exec(&[
        "timeout",
        "5",
        "bash",
        "-c",
        "exec 3<>/dev/tcp/10.77.0.13/7000",
    ]);
    assert!(bash_connect.success(), "{bash_connect}");

    host3.disconnect();
    assert!(
        !reaches(host1, host3),
        "host1 still reaches a disconnected host3"
    );
    assert!(
        !reaches(host3, host2),
        "a disconnected host3 still reaches host2"
    );
    assert!(
        reaches(host1, host2),
        "host1 lost host2 when host3 was disconnected"
    );
    assert!(
        reaches(host3, host3),
        "a disconnected host3 cannot reach itself"
    );

    host3.heal();
    wait_for(
        Duration::from_secs(10),
        "host1 to reach a healed host3",
        || reaches(host1, host3).then_some(()),
    );
    // host3's neighbour entry for host2 may still be FAILED from the outage:
    // give it the same time to recover.
    wait_for(
        Duration::from_secs(10),
        "a healed host3 to reach host2",
        || reaches(host3, host2).then_some(()),
    );

    drop(_listeners);
    drop(cluster);
    assert_eq!(leftovers_of(&name), Vec::<String>::new());
}

#[test]
fn daemons_start_stop_kill_and_restart() {
    let cluster = Cluster::builder(2)
        .binary(FAKE_RSWARM)
        .start()
        .expect("two hosts with daemons");
    let name = cluster.name().to_string();
    let host1 = cluster.host(1);
    assert!(host1.is_running() && cluster.host(2).is_running());
    assert!(
        host1.socket().as_os_str().len() < 100,
        "socket path too long: {:?}",
        host1.socket()
    );
    assert!(
        host1
            .daemon_log_tail(5)
            .contains("fake daemon host1 listening on"),
        "{}",
        host1.daemon_log_tail(5)
    );

    // The CLI is pointed at the host's own socket unless the test names a host.
    let socket = format!("unix://{}", host1.socket().display());
    assert_eq!(
        host1.ok(&["node", "ls"]).trim(),
        format!("-H {socket} node ls")
    );
    assert_eq!(
        host1
            .ok(&["-H", "tcp://10.77.0.12:2377", "node", "ls"])
            .trim(),
        "-H tcp://10.77.0.12:2377 node ls"
    );
    assert_eq!(host1.fails(&["fail"]).trim(), "Error: asked to fail");
    // What `ok` panics with: the command, its output, the daemon's log.
    let message = format!("{:#}", host1.try_ok(&["fail"]).expect_err("`fail` fails"));
    for shown in [
        "$ nsenter --net=/var/run/netns/",
        "exit status: 1",
        "Error: asked to fail",
        "host1 daemon log",
    ] {
        assert!(
            message.contains(shown),
            "{shown:?} missing from:\n{message}"
        );
    }

    // kill -9 leaves a stale socket file; start must wait for the new daemon anyway.
    let first_pid = host1.pid().expect("a pid");
    host1.kill();
    assert!(!host1.is_running() && host1.socket().exists());
    host1.kill(); // idempotent
    host1.start();
    assert!(host1.is_running());
    assert_ne!(host1.pid(), Some(first_pid));

    let status = host1.stop();
    assert!(
        !status.success(),
        "the fake daemon dies of SIGTERM: {status}"
    );
    assert!(!host1.is_running());
    host1.start();
    host1.restart();
    assert!(host1.is_running());
    let log = std::fs::read_to_string(host1.log_path()).unwrap();
    assert_eq!(
        log.matches("=== rswarm-tests: starting host1").count(),
        4,
        "{log}"
    );

    let pids: Vec<u32> = cluster.hosts().iter().filter_map(|h| h.pid()).collect();
    drop(cluster);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} outlived its cluster"
        );
    }
    assert_eq!(leftovers_of(&name), Vec::<String>::new());
}

#[test]
fn a_daemon_that_cannot_start_fails_the_cluster_and_leaves_nothing() {
    let err = Cluster::builder(2)
        .binary("/bin/false")
        .start()
        .expect_err("/bin/false is no daemon");
    let message = format!("{err:#}");
    assert!(message.contains("exited while starting"), "{message}");
    let name = message
        .split_whitespace()
        .skip_while(|word| *word != "cluster")
        .nth(1)
        .unwrap_or_else(|| panic!("no cluster name in: {message}"));
    assert_eq!(leftovers_of(name), Vec::<String>::new());
}

/// Set in the child process of the test below.
const CHILD_ENV: &str = "RSWARM_TESTS_DIE_WITHOUT_TEARDOWN";

#[test]
fn daemons_die_with_the_test_process_and_the_cleanup_script_removes_the_rest() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: start a cluster, say what it is, and die without any teardown.
        let cluster = Cluster::builder(2)
            .binary(FAKE_RSWARM)
            .start()
            .expect("a cluster");
        let pids: Vec<String> = cluster
            .hosts()
            .iter()
            .map(|h| h.pid().unwrap().to_string())
            .collect();
        println!("CLUSTER {} PIDS {}", cluster.name(), pids.join(" "));
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        // SAFETY: ends the process at once, on purpose: no destructor runs.
        unsafe { libc::_exit(0) };
    }

    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "daemons_die_with_the_test_process_and_the_cleanup_script_removes_the_rest",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child test process");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CLUSTER "))
        .unwrap_or_else(|| {
            panic!(
                "the child said nothing:\n{stdout}\n{}",
                String::from_utf8_lossy(&child.stderr)
            )
        });
    let words: Vec<&str> = line.split_whitespace().collect();
    let (name, pids) = (words[1], &words[3..]);
    assert_eq!(pids.len(), 2, "{line}");

    let dead = |pid: &&str| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    };
    wait_for(
        Duration::from_secs(10),
        "the orphaned daemons to die",
        || pids.iter().all(dead).then_some(()),
    );
    assert!(
        !leftovers_of(name).is_empty(),
        "the child left nothing to clean up?"
    );

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/cleanup-leftovers.sh");
    let cleanup = Command::new("bash")
        .arg(script)
        .output()
        .expect("run the cleanup script");
    assert!(
        cleanup.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&cleanup.stdout),
        String::from_utf8_lossy(&cleanup.stderr)
    );
    assert_eq!(leftovers_of(name), Vec::<String>::new());
}
