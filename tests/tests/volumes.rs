//! Volumes end to end on two hosts (host1 manages, host2 works) with real runc
//! containers: a named volume made on the node where its task lands, kept
//! across tasks, listed on that node only, refused to `volume rm` while a task
//! uses it, removed once the service is gone, pruned; the image's content
//! copied into a new volume unless `volume-nocopy`; a bind mount of a missing
//! host path failing its task with the path in `service ps`; a tmpfs with its
//! size and mode.

use std::time::Duration;

use rswarm_tests::lists::{tasks, wait_tasks, Task};
use rswarm_tests::{wait_for, Cluster, Host};

/// How long a service may take to converge (image pull, scheduling, runc).
const CONVERGE: Duration = Duration::from_secs(90);

/// Two hosts with a registry; host1 manages, host2 works.
fn swarm() -> Cluster {
    let cluster = Cluster::with_registry(2).expect("two hosts and a registry");
    cluster
        .init_swarm(1, 1)
        .expect("a swarm of one manager and one worker");
    cluster
}

/// Waits until `service` has one running task, and returns it.
fn one_running(h1: &Host, service: &str) -> Task {
    let tasks = wait_tasks(h1, service, CONVERGE, &format!("{service} running"), |t| {
        t.iter().filter(|t| t.is_running()).count() == 1
    });
    tasks
        .into_iter()
        .find(|t| t.is_running())
        .expect("a running task")
}

/// Waits until `host` has no container left (stopped ones included).
fn no_containers(host: &Host) {
    wait_for(
        CONVERGE,
        &format!("no container left on {}", host.name()),
        || host.containers().is_empty().then_some(()),
    );
}

/// Lines of the file `name` in volume `volume` on `host`, read where
/// `volume inspect` says the volume is.
fn volume_file(host: &Host, volume: &str, name: &str) -> String {
    let mountpoint = host.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", volume]);
    let path = std::path::Path::new(mountpoint.trim()).join(name);
    std::fs::read_to_string(&path).unwrap_or_default()
}

#[test]
fn a_named_volume_lives_on_its_node_across_tasks_until_removed() {
    let cluster = swarm();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    let on_host2 = format!("node.hostname=={}", h2.name());
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "db",
        "--constraint",
        &on_host2,
        "--mount",
        "type=volume,source=data,target=/data,volume-label=tier=db",
        &image,
        "sh",
        "-c",
        "echo $HOSTNAME >> /data/log; exec sleep 100000",
    ]);
    let first = one_running(h1, "db");
    assert_eq!(first.node, h2.name());
    wait_for(CONVERGE, "the first task's line in the volume", || {
        (volume_file(h2, "data", "log").lines().count() == 1).then_some(())
    });

    // Listed on its node only.
    assert_eq!(
        h2.ok(&["volume", "ls"]),
        "DRIVER    VOLUME NAME\nlocal     data\n"
    );
    assert_eq!(h1.ok(&["volume", "ls"]), "DRIVER    VOLUME NAME\n");
    assert_eq!(
        h2.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        ""
    );
    assert_eq!(
        h2.ok(&["volume", "ls", "-q", "--filter", "label=tier=db"]),
        "data\n"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&h2.ok(&["volume", "inspect", "data"])).expect("inspect is JSON");
    let v = &inspect[0];
    assert_eq!(
        (
            v["Name"].as_str(),
            v["Driver"].as_str(),
            v["Scope"].as_str()
        ),
        (Some("data"), Some("local"), Some("local")),
        "{inspect}"
    );
    assert_eq!(v["Labels"]["tier"], "db", "{inspect}");
    let mountpoint = v["Mountpoint"].as_str().unwrap_or_default();
    assert_eq!(
        std::path::Path::new(mountpoint),
        h2.data_dir().join("volumes/data/_data")
    );
    assert!(
        v["CreatedAt"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{inspect}"
    );
    assert_eq!(
        h1.fails(&["volume", "inspect", "data"]).trim(),
        "Error: No such volume: data"
    );

    // In use: refused, one line, the task named.
    let out = h2.rswarm(&["volume", "rm", "data"]);
    assert_eq!(out.code(), Some(1), "{out}");
    let container = h2
        .containers()
        .into_iter()
        .map(|c| c.id)
        .next()
        .expect("the task's container");
    assert_eq!(
        out.stderr.trim(),
        format!("Error response from daemon: remove data: volume is in use - [{container}]")
    );

    // The task is replaced on the same node: the volume and its content stay.
    h1.ok(&["service", "scale", "db=0"]);
    no_containers(h2);
    h1.ok(&["service", "scale", "db=1"]);
    let second = one_running(h1, "db");
    assert_ne!(second.id, first.id);
    wait_for(CONVERGE, "both tasks' lines in the volume", || {
        (volume_file(h2, "data", "log").lines().count() == 2).then_some(())
    });
    let log = volume_file(h2, "data", "log");
    let lines: Vec<&str> = log.lines().collect();
    assert_ne!(lines[0], lines[1], "two different containers wrote: {log}");

    // The service gone, the volume can go.
    h1.ok(&["service", "rm", "db"]);
    no_containers(h2);
    assert_eq!(
        h2.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        "data\n"
    );
    assert_eq!(h2.ok(&["volume", "rm", "data"]), "data\n");
    assert_eq!(h2.ok(&["volume", "ls", "-q"]), "");
    assert!(!h2.data_dir().join("volumes/data").exists());
    assert_eq!(
        h2.fails(&["volume", "rm", "data"]).trim(),
        "Error: No such volume: data"
    );
    assert_eq!(h2.ok(&["volume", "rm", "-f", "data"]), "data\n");

    // Prune removes what no container uses, and only that.
    assert_eq!(
        h1.ok(&["volume", "create", "--label", "a=b", "spare"]),
        "spare\n"
    );
    let random = h1.ok(&["volume", "create"]);
    assert_eq!(random.trim().len(), 64, "{random}");
    std::fs::write(
        h1.data_dir().join("volumes/spare/_data/blob"),
        vec![7u8; 2000],
    )
    .expect("a file in the volume");
    let on_host1 = format!("node.hostname=={}", h1.name());
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "keeper",
        "--constraint",
        &on_host1,
        "--mount",
        "type=volume,source=kept,target=/k",
        &image,
        "sleep",
        "100000",
    ]);
    one_running(h1, "keeper");
    let mut names: Vec<String> = vec!["spare".into(), random.trim().into()];
    names.sort();
    assert_eq!(
        h1.ok(&["volume", "prune", "-f"]),
        format!(
            "Deleted Volumes:\n{}\n\nTotal reclaimed space: 2kB\n",
            names.join("\n")
        )
    );
    assert_eq!(h1.ok(&["volume", "ls", "-q"]), "kept\n");
    assert_eq!(
        h1.ok(&["volume", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
}

#[test]
fn the_images_content_fills_a_new_volume_unless_nocopy() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    let on_host1 = format!("node.hostname=={}", h1.name());
    for (name, mount) in [
        ("copy", "type=volume,source=etc-copy,target=/etc"),
        (
            "nocopy",
            "type=volume,source=etc-empty,target=/etc,volume-nocopy",
        ),
    ] {
        h1.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--constraint",
            &on_host1,
            "--mount",
            mount,
            &image,
            "sleep",
            "100000",
        ]);
    }
    one_running(h1, "copy");
    one_running(h1, "nocopy");
    let passwd = volume_file(h1, "etc-copy", "passwd");
    assert!(
        passwd.starts_with("root:"),
        "the image's /etc/passwd: {passwd:?}"
    );
    let empty = h1.data_dir().join("volumes/etc-empty/_data");
    let entries: Vec<_> = std::fs::read_dir(&empty)
        .expect("the nocopy volume")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        entries.is_empty(),
        "nothing copied with nocopy: {entries:?}"
    );
    // What the task sees is the volume.
    let seen = h1.ok(&["exec", "copy.1", "cat", "/etc/passwd"]);
    assert_eq!(seen, passwd);

    // An anonymous volume is the task's own: listed while it exists, gone with it.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "anon",
        "--constraint",
        &on_host1,
        "--mount",
        "type=volume,target=/cache",
        &image,
        "sleep",
        "100000",
    ]);
    one_running(h1, "anon");
    let named = ["etc-copy", "etc-empty"];
    let listed = h1.ok(&["volume", "ls", "-q"]);
    let anonymous: Vec<&str> = listed.lines().filter(|n| !named.contains(n)).collect();
    assert!(
        anonymous.len() == 1 && anonymous[0].len() == 64,
        "one anonymous volume: {listed}"
    );
    h1.ok(&["service", "rm", "anon"]);
    wait_for(CONVERGE, "the anonymous volume gone with its task", || {
        let listed = h1.ok(&["volume", "ls", "-q"]);
        (listed == "etc-copy\netc-empty\n").then_some(())
    });
}

#[test]
fn a_missing_bind_source_fails_the_task_and_tmpfs_has_its_size() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "bound",
        "--mount",
        "type=bind,source=/nonexistent/rswarm-data,target=/d",
        &image,
        "sleep",
        "100000",
    ]);
    let failed = wait_tasks(h1, "bound", CONVERGE, "a task refused for its bind", |t| {
        t.iter().any(|t| t.current.starts_with("Rejected"))
    });
    let refused: Vec<&Task> = failed
        .iter()
        .filter(|t| t.current.starts_with("Rejected"))
        .collect();
    assert!(
        refused.iter().all(|t| t
            .error
            .contains("bind source path does not exist: /nonexistent/rswarm-data")),
        "{failed:#?}"
    );
    let ps = h1.ok(&["service", "ps", "--no-trunc", "bound"]);
    assert!(
        ps.contains("bind source path does not exist: /nonexistent/rswarm-data"),
        "{ps}"
    );
    h1.ok(&["service", "rm", "bound"]);

    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "scratch",
        "--mount",
        "type=tmpfs,target=/scratch,tmpfs-size=16m,tmpfs-mode=700",
        &image,
        "sleep",
        "100000",
    ]);
    let task = one_running(h1, "scratch");
    let mounts = h1.ok(&["exec", &task.name, "cat", "/proc/mounts"]);
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/scratch"))
        .unwrap_or_else(|| panic!("/scratch is mounted: {mounts}"));
    assert!(line.starts_with("tmpfs /scratch tmpfs "), "{line}");
    assert!(line.contains("size=16384k"), "{line}");
    assert!(line.contains("mode=700"), "{line}");
    let df = h1.ok(&["exec", &task.name, "df", "-k", "/scratch"]);
    assert!(
        df.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("16384")),
        "{df}"
    );
    assert!(tasks(h1, "scratch").iter().all(|t| t.error.is_empty()));
}
