//! Tests of the whole store against Debian's real registry
//! (`/usr/bin/docker-registry`, the CNCF Distribution registry 2.8, filesystem
//! storage in a temp dir, on 127.0.0.1), with images built here and pushed
//! with `oci-client`. They fail, never skip, when the registry is missing.
//! Traffic stays on loopback: Docker Hub fallback is off in these stores.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tar::EntryType;

use super::*;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A registry process, killed on drop.
struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    fn start(user: Option<(&str, &str)>) -> TestRegistry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: these tests need Debian's registry (apt-get install -y docker-registry)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut auth = String::new();
        if let Some((u, p)) = user {
            let hash = bcrypt::hash_with_result(p, 4)
                .expect("bcrypt")
                .format_for_version(bcrypt::Version::TwoY);
            let path = dir.path().join("htpasswd");
            fs::write(&path, format!("{u}:{hash}\n")).expect("htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: rswarm-test\n    path: {}\n",
                path.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: rswarm-test-secret\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("config.yml");
        let log = fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting docker-registry");
        let reg = TestRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- building images ----

enum E {
    Dir(&'static str, u32),
    File(&'static str, &'static [u8], u32, u64),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let data: &[u8] = match e {
            E::Dir(p, mode) => {
                h.set_path(p).unwrap();
                h.set_entry_type(EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                &[]
            }
            E::File(p, data, mode, uid) => {
                h.set_path(p).unwrap();
                h.set_entry_type(EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*uid);
                h.set_size(data.len() as u64);
                data
            }
            E::Symlink(p, target) | E::Hardlink(p, target) => {
                h.set_path(p).unwrap();
                h.set_entry_type(if matches!(e, E::Symlink(..)) {
                    EntryType::Symlink
                } else {
                    EntryType::Link
                });
                h.set_link_name(target).unwrap();
                h.set_mode(0o777);
                h.set_size(0);
                &[]
            }
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// The base layer: files, a symlink, a hardlink, an owned file, a dir.
fn base_layer() -> Vec<u8> {
    tar_of(&[
        E::Dir("etc/", 0o755),
        E::File("etc/hello.txt", b"hello\n", 0o644, 0),
        E::Hardlink("etc/hello-again.txt", "etc/hello.txt"),
        E::File("etc/keep.txt", b"keep\n", 0o644, 0),
        E::File("etc/owned.txt", b"mine\n", 0o640, 1000),
        E::Dir("bin/", 0o755),
        E::Symlink("bin/hi", "../etc/hello.txt"),
        E::Dir("data/", 0o755),
        E::File("data/old.txt", b"old\n", 0o644, 0),
    ])
}

/// Deletes etc/hello.txt (whiteout) and replaces data/ (opaque).
fn whiteout_layer() -> Vec<u8> {
    tar_of(&[
        E::Dir("etc/", 0o755),
        E::File("etc/.wh.hello.txt", b"", 0o644, 0),
        E::Dir("data/", 0o755),
        E::File("data/.wh..wh..opq", b"", 0o644, 0),
        E::File("data/new.txt", b"new\n", 0o644, 0),
    ])
}

fn extra_layer() -> Vec<u8> {
    tar_of(&[E::File("extra.txt", b"extra\n", 0o644, 0)])
}

struct TestImage {
    layers: Vec<Vec<u8>>,
    config: Vec<u8>,
}

fn image(layers: Vec<Vec<u8>>, arch: &str, cmd: &str) -> TestImage {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-05-06T07:08:09Z",
        "config": {
            "Entrypoint": ["/bin/hi"],
            "Cmd": [cmd],
            "Env": ["PATH=/bin", "GREETING=hello"],
            "WorkingDir": "/data",
            "User": "1000",
            "StopSignal": "SIGQUIT",
            "Labels": {"org.example": "yes"},
            "Healthcheck": {"Test": ["CMD", "/bin/true"], "Interval": 2000000000, "Retries": 2}
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    TestImage { layers, config }
}

fn pusher() -> Client {
    Client::try_from(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
    .expect("client")
}

/// Pushes an image (gzip layers); returns the manifest's digest and size.
async fn push(
    client: &Client,
    auth: &RegistryAuth,
    reference: &str,
    img: &TestImage,
    docker: bool,
) -> (String, usize) {
    let r: Reference = reference.parse().expect("reference");
    client
        .auth(&r, auth, RegistryOperation::Push)
        .await
        .expect("auth for push");
    let mut layers = Vec::new();
    for l in &img.layers {
        let blob = gzip(l);
        let digest = sha256_digest(&blob);
        client
            .push_blob(&r, blob.clone(), &digest)
            .await
            .expect("push layer");
        layers.push(serde_json::json!({
            "mediaType": if docker { DOCKER_LAYER } else { OCI_LAYER },
            "digest": digest, "size": blob.len(),
        }));
    }
    let config_digest = sha256_digest(&img.config);
    client
        .push_blob(&r, img.config.clone(), &config_digest)
        .await
        .expect("push config");
    let media_type = if docker {
        DOCKER_MANIFEST
    } else {
        OCI_MANIFEST
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": if docker { DOCKER_CONFIG } else { OCI_CONFIG },
            "digest": config_digest, "size": img.config.len(),
        },
        "layers": layers,
    }))
    .unwrap();
    let size = manifest.len();
    (push_manifest(client, &r, manifest, media_type).await, size)
}

async fn push_manifest(
    client: &Client,
    r: &Reference,
    body: Vec<u8>,
    media_type: &'static str,
) -> String {
    let digest = sha256_digest(&body);
    client
        .push_manifest_raw(r, body, http::HeaderValue::from_static(media_type))
        .await
        .expect("push manifest");
    digest
}

fn layer_dirs(root: &Path) -> BTreeSet<String> {
    fs::read_dir(root.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn blob_count(root: &Path) -> usize {
    fs::read_dir(root.join("blobs/sha256")).unwrap().count()
}

fn check_app_image(img: &LocalImage) {
    assert_eq!(img.config.entrypoint, vec!["/bin/hi"]);
    assert_eq!(img.config.env, vec!["PATH=/bin", "GREETING=hello"]);
    assert_eq!(img.config.working_dir, "/data");
    assert_eq!(img.config.user, "1000");
    assert_eq!(img.config.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(
        img.config.labels.get("org.example").map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        img.config.healthcheck,
        Some(vec!["CMD".to_string(), "/bin/true".to_string()])
    );
    assert_eq!(
        img.config.healthcheck_interval,
        Some(Duration::from_secs(2))
    );
    assert_eq!(img.created, 1714979289);
    assert_eq!(img.layers.len(), 2);

    // Base layer: content, symlink, hardlink, ownership, modes, mtimes.
    let l0 = &img.layers[0];
    assert_eq!(fs::read(l0.join("etc/hello.txt")).unwrap(), b"hello\n");
    assert_eq!(
        fs::read_link(l0.join("bin/hi")).unwrap(),
        PathBuf::from("../etc/hello.txt")
    );
    assert_eq!(
        fs::metadata(l0.join("etc/hello-again.txt")).unwrap().ino(),
        fs::metadata(l0.join("etc/hello.txt")).unwrap().ino()
    );
    let owned = fs::metadata(l0.join("etc/owned.txt")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1000, 1000, 0o640)
    );
    assert_eq!(owned.mtime(), 1_700_000_000);
    assert_eq!(fs::metadata(l0.join("etc")).unwrap().mtime(), 1_700_000_000);

    // Top layer: whiteout as a 0:0 char device, opaque dir as an xattr.
    let l1 = &img.layers[1];
    let wh = fs::symlink_metadata(l1.join("etc/hello.txt")).unwrap();
    assert!(
        wh.file_type().is_char_device(),
        "whiteout is not a char device"
    );
    assert_eq!(wh.rdev(), 0);
    assert!(!l1.join("etc/.wh.hello.txt").exists());
    assert!(!l1.join("data/.wh..wh..opq").exists());
    assert_eq!(
        xattr::get(l1.join("data"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(fs::read(l1.join("data/new.txt")).unwrap(), b"new\n");
}

/// Mounts the layers as overlayfs lowerdirs and checks what a container sees.
fn check_overlay(img: &LocalImage) {
    let tmp = tempfile::tempdir().unwrap();
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lower: Vec<String> = img
        .layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={}", lower.join(":")).as_str()),
    )
    .expect("mounting overlayfs");
    let hello = merged.join("etc/hello.txt").exists();
    let keep = fs::read(merged.join("etc/keep.txt")).ok();
    let mut data: Vec<String> = fs::read_dir(merged.join("data"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    data.sort();
    let seen = (hello, keep, data);
    nix::mount::umount(&merged).expect("umount");
    assert_eq!(
        seen,
        (false, Some(b"keep\n".to_vec()), vec!["new.txt".to_string()]),
        "whiteout/opaque not honoured by overlayfs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_tag_and_digest_share_layers_and_convert_whiteouts() {
    let reg = TestRegistry::start(None);
    let host = reg.host();
    let client = pusher();
    let anon = RegistryAuth::Anonymous;
    let app = image(vec![base_layer(), whiteout_layer()], host_arch(), "app");
    let (app_digest, _) = push(&client, &anon, &format!("{host}/test/app:1"), &app, true).await;
    let other = image(vec![base_layer(), extra_layer()], host_arch(), "other");
    push(
        &client,
        &anon,
        &format!("{host}/test/other:1"),
        &other,
        false,
    )
    .await;

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    let store = ImageStore::open_without_hub(&root, RegistryConfig::default()).unwrap();

    // By tag (Docker schema 2 media types).
    let a = store.pull(&format!("{host}/test/app:1")).await.unwrap();
    assert_eq!(a.reference, format!("{host}/test/app:1"));
    assert_eq!(a.digest, app_digest);
    assert_eq!(a.id, sha256_digest(&app.config));
    check_app_image(&a);
    check_overlay(&a);

    // By digest.
    let d = store
        .pull(&format!("{host}/test/app@{app_digest}"))
        .await
        .unwrap();
    assert_eq!(d.reference, format!("{host}/test/app@{app_digest}"));
    assert_eq!(
        (d.id.clone(), d.digest.clone()),
        (a.id.clone(), app_digest.clone())
    );
    assert_eq!(d.layers, a.layers);

    // A second image (OCI media types) shares the base layer, unpacked once.
    let base_inode = fs::metadata(&a.layers[0]).unwrap().ino();
    let o = store.pull(&format!("{host}/test/other:1")).await.unwrap();
    assert_eq!(o.layers[0], a.layers[0]);
    assert_eq!(fs::metadata(&o.layers[0]).unwrap().ino(), base_inode);
    assert_eq!(fs::read(o.layers[1].join("extra.txt")).unwrap(), b"extra\n");
    let expected: BTreeSet<String> = [&base_layer(), &whiteout_layer(), &extra_layer()]
        .iter()
        .map(|l| sha256_hex(&sha256_digest(l)).unwrap().to_string())
        .collect();
    assert_eq!(
        layer_dirs(&root),
        expected,
        "one directory per distinct layer"
    );
    assert_eq!(store.list().len(), 3);

    // Docker's errors.
    let e = store.pull(&format!("{host}/nope:1")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("pull access denied for {host}/nope, repository does not exist or may require 'docker login'")
    );
    let e = store.pull(&format!("{host}/test/app:2")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("manifest for {host}/test/app:2 not found: manifest unknown")
    );
    let e = store.pull("Bad/Ref").await.unwrap_err();
    assert!(
        e.to_string().starts_with("invalid reference format: "),
        "{e}"
    );

    // Without the registry: ensure uses the local copy, pull says why not.
    drop(reg);
    let again = store.ensure(&format!("{host}/test/app:1")).await.unwrap();
    assert_eq!(again.id, a.id);
    let by_digest = store
        .ensure(&format!("{host}/test/other@{}", o.digest))
        .await
        .unwrap();
    assert_eq!(by_digest.id, o.id);
    let e = store.pull(&format!("{host}/test/app:1")).await.unwrap_err();
    assert!(matches!(e, ImageError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "pulling {host}/test/app:1: registry {host} unreachable: "
        )),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'));

    // The index survives a restart.
    let before: Vec<(String, String)> = store
        .list()
        .into_iter()
        .map(|i| (i.reference, i.id))
        .collect();
    drop(store);
    let store = ImageStore::open_without_hub(&root, RegistryConfig::default()).unwrap();
    let after: Vec<(String, String)> = store
        .list()
        .into_iter()
        .map(|i| (i.reference, i.id))
        .collect();
    assert_eq!(before, after);
    assert_eq!(layer_dirs(&root), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_share_one_download_and_index_picks_this_arch() {
    let reg = TestRegistry::start(None);
    let host = reg.host();
    let client = pusher();
    let anon = RegistryAuth::Anonymous;
    let img = image(vec![base_layer(), whiteout_layer()], host_arch(), "coal");
    push(&client, &anon, &format!("{host}/test/coal:1"), &img, false).await;

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    let store = ImageStore::open_without_hub(&root, RegistryConfig::default()).unwrap();
    let r = format!("{host}/test/coal:1");
    let (x, y, z) = tokio::join!(store.pull(&r), store.pull(&r), store.pull(&r));
    let (x, y, z) = (x.unwrap(), y.unwrap(), z.unwrap());
    assert_eq!(
        (x.id.clone(), x.digest.clone()),
        (y.id.clone(), y.digest.clone())
    );
    assert_eq!(x.layers, z.layers);
    let gets = reg
        .log()
        .lines()
        .filter(|l| l.contains("\"GET /v2/test/coal/manifests/1 "))
        .count();
    assert_eq!(
        gets,
        1,
        "three concurrent pulls must share one download:\n{}",
        reg.log()
    );

    // A multi-platform index: this machine's entry is taken.
    let other_arch = if host_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let foreign = image(vec![base_layer()], other_arch, "foreign");
    let native = image(vec![base_layer(), extra_layer()], host_arch(), "native");
    let (foreign_digest, foreign_size) = push(
        &client,
        &anon,
        &format!("{host}/test/multi:foreign"),
        &foreign,
        false,
    )
    .await;
    let (native_digest, native_size) = push(
        &client,
        &anon,
        &format!("{host}/test/multi:native"),
        &native,
        false,
    )
    .await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": foreign_digest, "size": foreign_size,
             "platform": {"architecture": other_arch, "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": native_digest, "size": native_size,
             "platform": {"architecture": host_arch(), "os": "linux"}},
        ],
    }))
    .unwrap();
    let index_ref: Reference = format!("{host}/test/multi:1").parse().unwrap();
    let index_digest = push_manifest(&client, &index_ref, index, OCI_INDEX).await;
    let m = store.pull(&format!("{host}/test/multi:1")).await.unwrap();
    assert_eq!(m.id, sha256_digest(&native.config));
    assert_eq!(
        m.digest, index_digest,
        "digest is the index's, as Docker's RepoDigests"
    );
    assert_eq!(m.layers.len(), 2);
    let by_index = store
        .get(&format!("{host}/test/multi@{index_digest}"))
        .expect("found by index digest");
    assert_eq!(by_index.id, m.id);
    let by_manifest = store
        .get(&format!("{host}/test/multi@{native_digest}"))
        .expect("found by manifest digest");
    assert_eq!(by_manifest.id, m.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_registries_use_http_and_mirrors_serve_docker_hub_names() {
    let reg = TestRegistry::start(None);
    let host = reg.host();
    let client = pusher();
    let anon = RegistryAuth::Anonymous;
    let img = image(vec![base_layer(), whiteout_layer()], host_arch(), "x");
    push(&client, &anon, &format!("{host}/test/app:1"), &img, true).await;
    push(
        &client,
        &anon,
        &format!("{host}/library/busybox:1"),
        &img,
        true,
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();

    // Not listed as insecure: HTTPS only, which a plain-HTTP registry fails.
    let by_name = format!("localhost:{}/test/app:1", reg.port);
    let secure =
        ImageStore::open_without_hub(&tmp.path().join("a"), RegistryConfig::default()).unwrap();
    let e = secure.pull(&by_name).await.unwrap_err();
    assert!(matches!(e, ImageError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("registry localhost:{} unreachable", reg.port)),
        "{e}"
    );

    // Listed: works over plain HTTP.
    let insecure = ImageStore::open_without_hub(
        &tmp.path().join("b"),
        RegistryConfig {
            insecure_registries: vec![format!("localhost:{}", reg.port)],
            ..Default::default()
        },
    )
    .unwrap();
    let got = insecure.pull(&by_name).await.unwrap();
    assert_eq!(got.reference, by_name);
    assert_eq!(got.id, sha256_digest(&img.config));
    // Again, with the transport remembered.
    insecure.pull(&by_name).await.unwrap();

    // A mirror serves docker.io names.
    let mirrored = ImageStore::open_without_hub(
        &tmp.path().join("c"),
        RegistryConfig {
            mirrors: vec![format!("http://{host}")],
            ..Default::default()
        },
    )
    .unwrap();
    let bb = mirrored.pull("busybox:1").await.unwrap();
    assert_eq!(bb.reference, "docker.io/library/busybox:1");
    assert_eq!(bb.id, sha256_digest(&img.config));
    assert!(mirrored.get("busybox:1").is_some());
    assert!(mirrored.get("docker.io/library/busybox:1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_accepts_right_and_refuses_wrong_credentials() {
    let reg = TestRegistry::start(Some(("alice", "s3cret")));
    let host = reg.host();
    let client = pusher();
    let creds = RegistryAuth::Basic("alice".into(), "s3cret".into());
    let img = image(vec![base_layer(), whiteout_layer()], host_arch(), "x");
    push(
        &client,
        &creds,
        &format!("{host}/test/private:1"),
        &img,
        false,
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let with = |dir: &str, password: Option<&str>| {
        let mut auths = HashMap::new();
        if let Some(p) = password {
            auths.insert(host.clone(), ("alice".to_string(), p.to_string()));
        }
        ImageStore::open_without_hub(
            &tmp.path().join(dir),
            RegistryConfig {
                auths,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let r = format!("{host}/test/private:1");

    let ok = with("ok", Some("s3cret")).pull(&r).await.unwrap();
    assert_eq!(ok.id, sha256_digest(&img.config));

    let e = with("wrong", Some("nope")).pull(&r).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("pulling {r}: unauthorized: registry {host} refused the credentials of user 'alice' (incorrect username or password)")
    );

    let e = with("none", None).pull(&r).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("pull access denied for {host}/test/private, repository does not exist or may require 'docker login'")
    );
}

// ---- archives ----

struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }
    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_link_name(target).unwrap();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(EntryType::Symlink);
        h.set_cksum();
        self.0.append(&h, std::io::empty()).unwrap();
        self
    }
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn hex_of(data: &[u8]) -> String {
    sha256_hex(&sha256_digest(data)).unwrap().to_string()
}

#[test]
fn load_docker_save_and_oci_archives_then_remove_with_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    let store = ImageStore::open_without_hub(&root, RegistryConfig::default()).unwrap();

    // docker save: two images sharing the base layer (the second through a
    // symlinked layer.tar, as docker save writes repeats), the second untagged.
    let base = base_layer();
    let top = whiteout_layer();
    let one = image(vec![base.clone(), top.clone()], host_arch(), "one");
    let two = image(vec![base.clone()], host_arch(), "two");
    let manifest = serde_json::json!([
        {"Config": format!("{}.json", hex_of(&one.config)), "RepoTags": ["busybox:saved", "busybox:also"],
         "Layers": ["l1/layer.tar", "l2/layer.tar"]},
        {"Config": format!("{}.json", hex_of(&two.config)), "RepoTags": null, "Layers": ["l3/layer.tar"]},
    ]);
    let mut b = TarBuilder::new();
    b.file(&format!("{}.json", hex_of(&one.config)), &one.config)
        .file(&format!("{}.json", hex_of(&two.config)), &two.config)
        .file("l1/layer.tar", &base)
        .file("l2/layer.tar", &top)
        .symlink("l3/layer.tar", "../l1/layer.tar")
        .file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let save = b.finish();
    let save_path = tmp.path().join("save.tar");
    fs::write(&save_path, &save).unwrap();
    let loaded = store.load(&save_path).unwrap();
    let refs: BTreeSet<String> = loaded.iter().map(|i| i.reference.clone()).collect();
    assert_eq!(
        refs,
        [
            "".to_string(),
            "docker.io/library/busybox:also".to_string(),
            "docker.io/library/busybox:saved".to_string()
        ]
        .into_iter()
        .collect()
    );
    let saved = store.get("busybox:saved").expect("busybox:saved");
    assert_eq!(saved.id, sha256_digest(&one.config));
    check_app_image(&saved);
    check_overlay(&saved);
    let untagged = loaded.iter().find(|i| i.reference.is_empty()).unwrap();
    assert_eq!(untagged.id, sha256_digest(&two.config));
    assert_eq!(untagged.layers, vec![saved.layers[0].clone()]);
    assert_eq!(layer_dirs(&root).len(), 2);

    // The same archive gzipped: same images, nothing unpacked again.
    let base_inode = fs::metadata(&saved.layers[0]).unwrap().ino();
    let gz_path = tmp.path().join("save.tar.gz");
    fs::write(&gz_path, gzip(&save)).unwrap();
    let again = store.load(&gz_path).unwrap();
    assert_eq!(again.len(), 3);
    assert_eq!(fs::metadata(&saved.layers[0]).unwrap().ino(), base_inode);
    assert_eq!(layer_dirs(&root).len(), 2);
    assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());

    // OCI layout: a plain manifest named two ways, and a multi-platform index.
    let extra = extra_layer();
    let three = image(vec![base.clone(), extra.clone()], host_arch(), "three");
    let blobs: Vec<(Vec<u8>, &str)> = vec![(gzip(&base), OCI_LAYER), (gzip(&extra), OCI_LAYER)];
    let m3 = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&three.config), "size": three.config.len()},
        "layers": blobs.iter().map(|(b, mt)| serde_json::json!({"mediaType": mt, "digest": sha256_digest(b), "size": b.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    // The foreign entry's manifest is absent: only this machine's is read.
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256_digest(b"absent"), "size": 6,
             "platform": {"architecture": if host_arch() == "s390x" { "riscv64" } else { "s390x" }, "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": sha256_digest(&m3), "size": m3.len(),
             "platform": {"architecture": host_arch(), "os": "linux"}},
        ],
    }))
    .unwrap();
    let index_json = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256_digest(&m3), "size": m3.len(),
             "annotations": {"org.opencontainers.image.ref.name": "example.com/app:oci"}},
            {"mediaType": OCI_INDEX, "digest": sha256_digest(&idx), "size": idx.len(),
             "annotations": {"io.containerd.image.name": "example.com/multi:1",
                             "org.opencontainers.image.ref.name": "1"}},
            {"mediaType": OCI_MANIFEST, "digest": sha256_digest(&m3), "size": m3.len(),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}},
        ],
    }))
    .unwrap();
    let mut b = TarBuilder::new();
    b.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &index_json);
    for blob in [&m3, &idx, &three.config, &blobs[0].0, &blobs[1].0] {
        b.file(&format!("blobs/sha256/{}", hex_of(blob)), blob);
    }
    let oci_path = tmp.path().join("oci.tar");
    fs::write(&oci_path, b.finish()).unwrap();
    let loaded = store.load(&oci_path).unwrap();
    assert_eq!(loaded.len(), 3);
    let app = store
        .get("example.com/app:oci")
        .expect("example.com/app:oci");
    assert_eq!(app.id, sha256_digest(&three.config));
    assert_eq!(app.digest, sha256_digest(&m3));
    assert_eq!(
        app.layers[0], saved.layers[0],
        "base layer shared with the docker-save images"
    );
    let multi = store
        .get("example.com/multi:1")
        .expect("example.com/multi:1");
    assert_eq!(multi.id, app.id);
    assert_eq!(multi.digest, sha256_digest(&idx));
    assert_eq!(layer_dirs(&root).len(), 3);

    // Bad archives.
    let junk = tmp.path().join("junk");
    fs::write(&junk, b"not an archive at all").unwrap();
    assert!(matches!(store.load(&junk), Err(ImageError::Archive { .. })));
    let e = store.load(&tmp.path().join("missing.tar")).unwrap_err();
    assert!(e.to_string().contains("No such file"), "{e}");
    let mut bad = TarBuilder::new();
    let lie = tar_of(&[E::File("lie.txt", b"lie\n", 0o644, 0)]);
    let lying = image(vec![lie], host_arch(), "lying");
    bad.file("c.json", &lying.config)
        .file("l/layer.tar", &base) // not the layer the config names
        .file(
            "manifest.json",
            &serde_json::to_vec(&serde_json::json!([{"Config": "c.json", "RepoTags": ["liar:1"], "Layers": ["l/layer.tar"]}])).unwrap(),
        );
    let bad_path = tmp.path().join("bad.tar");
    fs::write(&bad_path, bad.finish()).unwrap();
    let e = store.load(&bad_path).unwrap_err();
    assert!(matches!(e, ImageError::Layer { .. }), "{e:?}");
    assert!(e.to_string().contains("diff-id"), "{e}");
    assert!(store.get("liar:1").is_none());
    assert_eq!(layer_dirs(&root).len(), 3, "no half layer left behind");

    // remove: one of two tags of an image in use is fine; the last is not.
    let one_id = saved.id.clone();
    let used_one = |i: &LocalImage| i.id == one_id;
    let r = store.remove("busybox:saved", false, &used_one).unwrap();
    assert_eq!(r.untagged, vec!["docker.io/library/busybox:saved"]);
    assert!(r.deleted.is_empty());
    let e = store.remove("busybox:also", false, &used_one).unwrap_err();
    assert!(matches!(e, ImageError::Conflict(_)), "{e:?}");
    assert!(e.to_string().contains("must force"), "{e}");
    let e = store.remove(&one_id[7..19], false, &used_one).unwrap_err();
    assert!(
        e.to_string().starts_with("conflict: unable to delete"),
        "{e}"
    );
    assert!(store.get("busybox:also").is_some());

    // Not in use: untagged, image and its own layer deleted; the shared base stays.
    let blobs_before = blob_count(&root);
    let r = store.remove("busybox:also", false, &|_| false).unwrap();
    assert_eq!(r.untagged, vec!["docker.io/library/busybox:also"]);
    let top_id = sha256_digest(&top);
    assert!(r.deleted.contains(&one_id), "{r:?}");
    assert!(r.deleted.contains(&top_id), "{r:?}");
    assert!(!r.deleted.contains(&sha256_digest(&base)), "{r:?}");
    assert!(!root.join("layers").join(hex_of(&top)).exists());
    assert!(root.join("layers").join(hex_of(&base)).is_dir());
    assert_eq!(
        blob_count(&root),
        blobs_before - 2,
        "config and manifest blobs collected"
    );
    assert!(store.get("busybox:also").is_none());

    // The dangling docker-save image, by ID.
    let two_id = sha256_digest(&two.config);
    let r = store.remove(&two_id, false, &|_| false).unwrap();
    assert_eq!(r.deleted, vec![two_id.clone()]);

    // Force on an image in use: untagged, kept dangling until pruned.
    let r = store
        .remove("example.com/app:oci", true, &|_| true)
        .unwrap();
    assert_eq!(r.untagged, vec!["example.com/app:oci"]);
    assert!(r.deleted.is_empty());
    let r = store
        .remove("example.com/multi:1", true, &|_| true)
        .unwrap();
    assert!(r.deleted.is_empty());
    assert!(store
        .list()
        .iter()
        .any(|i| i.reference.is_empty() && i.id == app.id));
    assert!(store.prune(&|_| true).unwrap().deleted.is_empty());
    let r = store.prune(&|_| false).unwrap();
    assert!(r.deleted.contains(&app.id), "{r:?}");
    assert!(store.list().is_empty(), "{:?}", store.list());
    assert!(layer_dirs(&root).is_empty());
    assert_eq!(blob_count(&root), 0);

    let e = store.remove("nope", false, &|_| false).unwrap_err();
    assert_eq!(e.to_string(), "No such image: nope");

    // The removals survive a restart.
    drop(store);
    let store = ImageStore::open_without_hub(&root, RegistryConfig::default()).unwrap();
    assert!(store.list().is_empty());
    let _: Arc<ImageStore> = store;
}

/// `rswarm login`'s check and a pull with credentials sent with the task
/// (`--with-registry-auth`), against a registry with basic auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_credentials_and_a_pull_uses_the_ones_sent_with_it() {
    let reg = TestRegistry::start(Some(("alice", "s3cret")));
    let host = reg.host();
    let creds = RegistryAuth::Basic("alice".into(), "s3cret".into());
    let img = image(vec![base_layer()], host_arch(), "y");
    let r = format!("{host}/test/sent:1");
    push(&pusher(), &creds, &r, &img, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let store =
        ImageStore::open_without_hub(&tmp.path().join("s"), RegistryConfig::default()).unwrap();

    store.login(&host, "alice", "s3cret").await.unwrap();
    let e = store.login(&host, "alice", "nope").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("login to {host} failed: unauthorized: incorrect username or password")
    );

    let sent = |server: &str, password: &str| PullAuth {
        server: server.to_string(),
        username: "alice".into(),
        password: password.into(),
    };
    let denied = format!(
        "pull access denied for {host}/test/sent, repository does not exist or may require 'docker login'"
    );
    assert_eq!(store.pull(&r).await.unwrap_err().to_string(), denied);
    // Credentials for another registry are not sent to this one.
    let other = sent("127.0.0.1:1", "s3cret");
    assert_eq!(
        store
            .pull_with(&r, Some(&other))
            .await
            .unwrap_err()
            .to_string(),
        denied
    );
    let wrong = sent(&host, "nope");
    assert!(store
        .pull_with(&r, Some(&wrong))
        .await
        .unwrap_err()
        .to_string()
        .contains("incorrect username or password"));
    let got = store
        .pull_with(&r, Some(&sent(&host, "s3cret")))
        .await
        .unwrap();
    assert_eq!(got.id, sha256_digest(&img.config));
}

/// `stack deploy --resolve-image`'s question: the digest a tag has on its
/// registry, read without pulling; a new push under the tag answers the new
/// digest; errors are a pull's; credentials sent with the request are used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_answers_the_registry_digest_of_a_tag_without_pulling() {
    let reg = TestRegistry::start(None);
    let host = reg.host();
    let client = pusher();
    let anon = RegistryAuth::Anonymous;
    let tmp = tempfile::tempdir().unwrap();
    let store =
        ImageStore::open_without_hub(&tmp.path().join("s"), RegistryConfig::default()).unwrap();
    let r = format!("{host}/test/app:1");
    let first = image(vec![base_layer()], host_arch(), "first");
    let (d1, _) = push(&client, &anon, &r, &first, true).await;
    assert_eq!(store.resolve(&r, None).await.unwrap(), d1);
    assert!(store.list().is_empty(), "resolving pulls nothing");
    assert_eq!(blob_count(&tmp.path().join("s")), 0);

    let second = image(vec![base_layer()], host_arch(), "second");
    let (d2, _) = push(&client, &anon, &r, &second, false).await;
    assert_ne!(d1, d2);
    assert_eq!(store.resolve(&r, None).await.unwrap(), d2);
    // A reference with a digest is its own answer.
    let pinned = format!("{host}/test/app:1@{d1}");
    assert_eq!(store.resolve(&pinned, None).await.unwrap(), d1);

    let e = store
        .resolve(&format!("{host}/nope:1"), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("pull access denied for {host}/nope, repository does not exist or may require 'docker login'")
    );
    let e = store
        .resolve(&format!("{host}/test/app:2"), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("manifest for {host}/test/app:2 not found: manifest unknown")
    );
    let e = store.resolve("127.0.0.1:1/app:1", None).await.unwrap_err();
    assert!(
        matches!(e, ImageError::Unreachable { .. }),
        "{e}: a registry that is not there"
    );

    // Credentials sent with the request, for a registry that wants them.
    let locked = TestRegistry::start(Some(("alice", "s3cret")));
    let lhost = locked.host();
    let creds = RegistryAuth::Basic("alice".into(), "s3cret".into());
    let lr = format!("{lhost}/test/sent:1");
    let (ld, _) = push(&pusher(), &creds, &lr, &first, false).await;
    assert!(store.resolve(&lr, None).await.is_err());
    let sent = PullAuth {
        server: lhost.clone(),
        username: "alice".into(),
        password: "s3cret".into(),
    };
    assert_eq!(store.resolve(&lr, Some(&sent)).await.unwrap(), ld);
}
