//! `stack deploy --resolve-image` end to end on a one-node swarm with the
//! registry the test starts:
//!
//! * `always` pins each service to the digest its tag has on the registry
//!   (`name:tag@sha256:…` in `service inspect`, as skopeo reads it from the
//!   registry), `service ls` still shows `name:tag`, and the task runs the
//!   pinned image;
//! * after a new image is pushed under the same tag, a redeploy with
//!   `changed` or `never` leaves the service alone (same digest, same task),
//!   and one with `always` updates only that service to the new digest;
//! * over a manager's `tcp://` port (no Images API there) it is refused
//!   before anything is created;
//! * an image loaded on the node (`image load`), which the registry does not
//!   have, gets Docker's warning, keeps its reference as written and runs.

use std::path::Path;
use std::time::Duration;

use rswarm_tests::images::{busybox, busybox_with_healthcheck};
use rswarm_tests::{wait_for, Cluster, Host};

/// How long a deploy that waits for its services may take.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(150);

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.display().to_string()
}

/// The digest the registry has for `reference`, read by skopeo from the host.
fn registry_digest(h: &Host, reference: &str) -> String {
    let out = h.exec(&[
        "skopeo",
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{reference}"),
    ]);
    assert!(out.success(), "skopeo inspect {reference}\n{out}");
    let digest = out.stdout.trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest:?}");
    digest
}

fn inspect_image(h: &Host, service: &str) -> String {
    h.ok(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ])
    .trim()
    .to_string()
}

/// IDs of the running tasks of `service`.
fn running_task_ids(h: &Host, service: &str) -> Vec<String> {
    let ps = h.ok(&[
        "service",
        "ps",
        service,
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}} {{.CurrentState}}",
    ]);
    let mut ids: Vec<String> = ps
        .lines()
        .filter(|l| l.contains(" Running"))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    ids.sort();
    ids
}

fn deploy(h: &Host, file: &str, mode: &str, stack: &str) -> rswarm_tests::CmdOutput {
    let out = h.rswarm_timeout(
        &[
            "stack",
            "deploy",
            "-c",
            file,
            "--resolve-image",
            mode,
            "--detach=false",
            stack,
        ],
        DEPLOY_TIMEOUT,
    );
    assert!(out.success(), "deploy --resolve-image {mode}\n{out}");
    out
}

#[test]
fn resolve_image_pins_digests_and_redeploys_only_what_changed() {
    let cluster = Cluster::with_registry(1).expect("a host and a registry");
    cluster.init_swarm(1, 0).expect("a one-node swarm");
    let h1 = cluster.host(1);
    let registry = cluster.registry();
    let app = registry.push(busybox(), "app:1").expect("push app:1");
    let other = registry.busybox();
    let first = registry_digest(h1, &app);

    let file = write(
        cluster.dir(),
        "app.yml",
        &format!(
            "services:
  app:
    image: \"{app}\"
    command: [sleep, '3600']
  other:
    image: \"{other}\"
    command: [sleep, '3600']
"
        ),
    );

    // Over a manager's tcp:// port there is no Images API to ask: refused
    // up front, nothing created.
    let certs = |file: &str| {
        h1.data_dir()
            .join("certificates")
            .join(file)
            .display()
            .to_string()
    };
    let manager = format!("tcp://{}", h1.swarm_addr());
    let (ca, cert, key) = (certs("ca.crt"), certs("node.crt"), certs("node.key"));
    let out = h1.rswarm(&[
        "-H",
        &manager,
        "--tlscacert",
        &ca,
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
        "stack",
        "deploy",
        "-c",
        &file,
        "--resolve-image",
        "always",
        "shop",
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with("--resolve-image always needs a node's local socket"),
        "{out}"
    );
    assert_eq!(h1.ok(&["service", "ls", "-q"]), "");

    // `always`: both pinned to what the registry has; tasks run.
    let out = deploy(h1, &file, "always", "shop");
    assert!(out.stdout.contains("Creating service shop_app"), "{out}");
    assert!(!out.stderr.contains("could not be accessed"), "{out}");
    assert_eq!(inspect_image(h1, "shop_app"), format!("{app}@{first}"));
    assert_eq!(
        inspect_image(h1, "shop_other"),
        format!("{other}@{}", registry_digest(h1, &other))
    );
    h1.wait_running_tasks("shop_app", 1);
    let ls = h1.ok(&[
        "service",
        "ls",
        "--filter",
        "name=shop_app",
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(ls.trim(), app, "service ls shows the tag, not the digest");
    let ps = h1.ok(&["service", "ps", "shop_app", "--format", "{{.Image}}"]);
    assert_eq!(ps.trim(), app, "service ps shows the tag, not the digest");
    let tasks = running_task_ids(h1, "shop_app");
    assert_eq!(tasks.len(), 1, "{tasks:?}");

    // The same tag now names another image.
    registry
        .push(busybox_with_healthcheck(), "app:1")
        .expect("push a new app:1");
    let second = registry_digest(h1, &app);
    assert_ne!(first, second, "the new push has another digest");

    // `changed` and `never`: the file did not change, nothing is updated.
    for mode in ["changed", "never"] {
        let out = deploy(h1, &file, mode, "shop");
        assert!(!out.stdout.contains("Updating service"), "{mode}: {out}");
        assert_eq!(
            inspect_image(h1, "shop_app"),
            format!("{app}@{first}"),
            "{mode}"
        );
        assert_eq!(running_task_ids(h1, "shop_app"), tasks, "{mode}");
    }

    // `always`: the app moves to the new digest, the other service is
    // resolved to the digest it already has and is left alone.
    let out = deploy(h1, &file, "always", "shop");
    assert!(out.stdout.contains("Updating service shop_app"), "{out}");
    assert!(!out.stdout.contains("Updating service shop_other"), "{out}");
    assert_eq!(inspect_image(h1, "shop_app"), format!("{app}@{second}"));
    wait_for(
        Duration::from_secs(60),
        "a new running shop_app task",
        || {
            let now = running_task_ids(h1, "shop_app");
            (now.len() == 1 && now != tasks).then_some(())
        },
    );

    // An image only loaded on the node: Docker's warning, kept as written.
    let loaded = format!("{}/loaded/busybox:1", registry.addr());
    let archive = cluster.dir().join("loaded.tar");
    busybox()
        .write_docker_archive(&archive, &loaded)
        .expect("a docker-save archive");
    h1.ok(&["image", "load", "-i", archive.to_str().unwrap()]);
    let local = write(
        cluster.dir(),
        "local.yml",
        &format!(
            "services:
  solo:
    image: \"{loaded}\"
    command: [sleep, '3600']
"
        ),
    );
    let out = deploy(h1, &local, "always", "local");
    let warning = format!(
        "image {loaded} could not be accessed on a registry to record\nits digest. Each node will access {loaded} independently,\npossibly leading to different nodes running different\nversions of the image.\n"
    );
    assert!(out.stderr.contains(&warning), "{out}");
    assert_eq!(inspect_image(h1, "local_solo"), loaded);
    h1.wait_running_tasks("local_solo", 1);
}
