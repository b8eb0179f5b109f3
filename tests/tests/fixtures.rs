//! The fixtures the service tests stand on, tested on their own (without the
//! product): the busybox test image runs under runc, a cluster's registry serves it
//! to every host, the archives for `image load` hold it, and a cluster's teardown
//! leaves no container, mount or cgroup behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rswarm_tests::{containers, images, wait_for, Cluster};

/// Unpacks the busybox test image's one layer into `rootfs` (what a daemon does).
fn unpack_busybox(rootfs: &Path) {
    let image = images::busybox();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.layout().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let blob = |digest: &str| {
        image
            .layout()
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    };
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(manifest_digest, image.manifest_digest());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(manifest_digest)).unwrap()).unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert!(config["config"]["Env"][0]
        .as_str()
        .unwrap()
        .starts_with("PATH="));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer = blob(layers[0]["digest"].as_str().unwrap());
    let listing = run(&["tar", "-tzf", layer.to_str().unwrap()]);
    assert!(
        listing.lines().any(|l| l == "bin/busybox") && listing.lines().any(|l| l == "bin/sh"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .all(|l| !l.starts_with('/') && !l.starts_with("./")),
        "layer entries are relative, as docker build makes them:\n{listing}"
    );
    std::fs::create_dir_all(rootfs).unwrap();
    run(&[
        "tar",
        "-xzf",
        layer.to_str().unwrap(),
        "-C",
        rootfs.to_str().unwrap(),
    ]);
}

fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("{argv:?}: {err}"));
    assert!(
        out.status.success(),
        "{argv:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes an OCI bundle at `bundle` whose rootfs is the busybox image, running
/// `args`, in cgroup `/rswarm/<id>` (where the daemons put tasks).
fn busybox_bundle(bundle: &Path, id: &str, args: &[&str]) {
    std::fs::create_dir_all(bundle).unwrap();
    unpack_busybox(&bundle.join("rootfs"));
    run(&["runc", "spec", "--bundle", bundle.to_str().unwrap()]);
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(args);
    spec["hostname"] = "busybox-test".into();
    spec["linux"]["cgroupsPath"] = format!("/rswarm/{id}").into();
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
}

#[test]
fn the_busybox_image_runs_its_applets_under_runc() {
    let dir: PathBuf = images::images_dir().join("runc-check");
    let _ = std::fs::remove_dir_all(&dir);
    let id = format!("rswtest{}", std::process::id());
    let bundle = dir.join("bundle");
    busybox_bundle(
        &bundle,
        &id,
        &[
            "sh",
            "-c",
            "hostname; id -u; echo hi | cat; ls /bin/httpd /bin/wget /bin/nslookup; \
             dd if=/dev/zero of=/dev/null bs=1k count=1 2>/dev/null && echo dd-ok; \
             test -d /tmp && echo tmp-ok; sleep 0; true && ! false && echo done",
        ],
    );
    let root = dir.join("runc");
    let out = run(&[
        "runc",
        "--root",
        root.to_str().unwrap(),
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out,
        "busybox-test\n0\nhi\n/bin/httpd\n/bin/nslookup\n/bin/wget\ndd-ok\ntmp-ok\ndone\n"
    );
}

#[test]
fn a_clusters_registry_serves_the_test_image_to_every_host() {
    let cluster = Cluster::builder(2)
        .without_daemons()
        .with_registry()
        .start()
        .expect("two hosts and a registry");
    let registry = cluster.registry();
    assert_eq!(registry.addr(), "10.77.0.2:5000");
    assert_eq!(registry.busybox(), "10.77.0.2:5000/busybox:1");
    let (status, catalog) = registry.get("/v2/_catalog").unwrap();
    assert_eq!(status, 200, "{catalog}");
    assert!(catalog.contains("\"busybox\""), "{catalog}");

    // Every host reaches it over the cluster network, as its daemon will.
    for host in cluster.hosts() {
        let inspect = host.exec(&[
            "skopeo",
            "--insecure-policy",
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}", registry.busybox()),
        ]);
        assert!(inspect.success(), "{inspect}");
        let info: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
        assert_eq!(
            info["Layers"].as_array().map(Vec::len),
            Some(1),
            "{inspect}"
        );
        assert_eq!(info["Architecture"], "amd64");
    }
    // `push` gives a Docker v2 schema 2 manifest, `push_oci` an OCI one.
    let (status, manifest) = registry.get("/v2/busybox/manifests/1").unwrap();
    assert_eq!(status, 200);
    assert!(
        manifest.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{manifest}"
    );
    let oci = registry
        .push_oci(images::busybox(), "busybox-oci:1")
        .unwrap();
    assert_eq!(oci, "10.77.0.2:5000/busybox-oci:1");
    let (status, manifest) = registry.get("/v2/busybox-oci/manifests/1").unwrap();
    assert_eq!(status, 200);
    assert!(
        manifest.contains("application/vnd.oci.image.manifest.v1+json"),
        "{manifest}"
    );
    let (status, _) = registry.get("/v2/nope/manifests/1").unwrap();
    assert_eq!(status, 404);

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cluster.dir().join("daemon.json")).unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"insecure-registries": ["10.77.0.2:5000", "10.77.0.2:5001"]})
    );

    // Gone with the cluster.
    let registry_pids = run(&["ip", "netns", "pids", cluster.switch_netns()]);
    assert!(!registry_pids.trim().is_empty());
    drop(cluster);
    for pid in registry_pids.split_whitespace() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the registry (pid {pid}) outlived its cluster"
        );
    }
}

#[test]
fn archives_for_image_load_hold_the_test_image() {
    let dir = images::images_dir().join("archives-check");
    std::fs::create_dir_all(&dir).unwrap();
    let docker = dir.join("busybox-docker.tar");
    images::busybox()
        .write_docker_archive(&docker, "loaded/busybox:1")
        .unwrap();
    let files = run(&["tar", "-tf", docker.to_str().unwrap()]);
    assert!(files.lines().any(|f| f == "manifest.json"), "{files}");
    let manifest = run(&["tar", "-xOf", docker.to_str().unwrap(), "manifest.json"]);
    assert!(manifest.contains("loaded/busybox:1"), "{manifest}");

    let oci = dir.join("busybox-oci.tar");
    images::busybox().write_oci_archive(&oci, "1").unwrap();
    let files = run(&["tar", "-tf", oci.to_str().unwrap()]);
    assert!(
        files.lines().any(|f| f == "index.json") && files.lines().any(|f| f == "oci-layout"),
        "{files}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn teardown_kills_and_deletes_the_containers_the_daemons_left() {
    let cluster = Cluster::network_only(1).expect("one host");
    let host = cluster.host(1);
    // What a daemon leaves when it is killed: a detached runc container with its
    // bundle under the data dir, its rootfs an overlay mount, its cgroup rswarm/<id>.
    let id = format!("{}t1", cluster.name());
    let bundle = host.data_dir().join("containers").join(&id);
    busybox_bundle(&bundle, &id, &["sleep", "1000"]);
    let lower = bundle.join("lower");
    std::fs::rename(bundle.join("rootfs"), &lower).unwrap();
    for sub in ["rootfs", "upper", "work"] {
        std::fs::create_dir_all(bundle.join(sub)).unwrap();
    }
    run(&[
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            bundle.join("upper").display(),
            bundle.join("work").display()
        ),
        bundle.join("rootfs").to_str().unwrap(),
    ]);
    let started = Command::new("runc")
        .args([
            "--root",
            host.runc_root().to_str().unwrap(),
            "run",
            "--detach",
        ])
        .args(["--bundle", bundle.to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(started.success());
    let running = wait_for(Duration::from_secs(10), "the container running", || {
        host.containers()
            .into_iter()
            .find(|c| c.id == id && c.status == "running")
    });
    assert!(running.pid > 0);
    let cgroups = containers::cgroups_named(&id);
    assert!(!cgroups.is_empty(), "runc made no cgroup rswarm/{id}");

    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    // Killed: gone once PID 1 has reaped it.
    wait_for(
        Duration::from_secs(5),
        "the container's process to be gone",
        || (!Path::new(&format!("/proc/{}", running.pid)).exists()).then_some(()),
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    let left: Vec<_> = cgroups.iter().filter(|c| c.exists()).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.to_str().unwrap()),
        "mounts left under {}:\n{mounts}",
        dir.display()
    );
}
