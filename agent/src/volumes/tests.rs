use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::copy::resolve_in_root;
use super::*;

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").mode() & 0o7777
}

#[test]
fn create_keeps_metadata_private_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = VolumeStore::open(&dir.path().join("volumes")).expect("open");
    let none = BTreeMap::new();
    let v = store
        .create(Some("data"), "local", &labels(&[("a", "1")]), &none)
        .expect("create");
    assert_eq!(v.driver, "local");
    assert_eq!(v.mountpoint, dir.path().join("volumes/data/_data"));
    assert!(v.created_at.ends_with('Z'), "{}", v.created_at);
    assert_eq!(mode(&dir.path().join("volumes")), 0o700);
    assert_eq!(mode(&dir.path().join("volumes/data")), 0o700);
    assert_eq!(mode(&dir.path().join("volumes/data/_data")), 0o755);
    assert_eq!(mode(&dir.path().join("volumes/data/volume.json")), 0o600);
    // Again: the same volume, its labels kept.
    let again = store
        .create(Some("data"), "", &labels(&[("b", "2")]), &none)
        .expect("again");
    assert_eq!(again, v);
    assert_eq!(store.get("data").expect("get"), v);
    let random = store.create(None, "local", &none, &none).expect("random");
    assert_eq!(random.name.len(), 64);
    assert!(random.name.bytes().all(|b| b.is_ascii_hexdigit()));
    let names: Vec<String> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|v| v.name)
        .collect();
    let mut want = vec!["data".to_string(), random.name.clone()];
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn bad_names_other_drivers_and_options_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = VolumeStore::open(dir.path()).expect("open");
    let none = BTreeMap::new();
    let err = |r: Result<Volume, VolumeError>| r.expect_err("refused").to_string();
    assert!(err(store.create(Some("../x"), "local", &none, &none))
        .starts_with("create ../x: \"../x\" includes invalid characters"));
    assert_eq!(
        err(store.create(Some("x1"), "nfs", &none, &none)),
        "create x1: volume driver \"nfs\" is not supported: only \"local\" is"
    );
    assert_eq!(
        err(store.create(Some("x1"), "local", &none, &labels(&[("type", "tmpfs")]))),
        "create x1: options of the local driver (--opt) are not supported"
    );
    let many: BTreeMap<String, String> = (0..1001)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    assert_eq!(
        err(store.create(Some("x1"), "local", &many, &none)),
        "a volume may have at most 1000 labels of 524288 bytes in all"
    );
    assert_eq!(
        store.get("nope").expect_err("missing").to_string(),
        "No such volume: nope"
    );
    assert_eq!(store.list().expect("list"), vec![]);
}

#[test]
fn claims_count_as_use_and_external_volumes_are_not_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = VolumeStore::open(dir.path()).expect("open");
    let (v, made) = store
        .claim("db", &labels(&[("l", "v")]), false, "task1")
        .expect("claim");
    assert!(made);
    assert_eq!(v.labels, labels(&[("l", "v")]));
    let (_, made) = store
        .claim("db", &BTreeMap::new(), false, "task2")
        .expect("claim");
    assert!(!made);
    assert_eq!(
        store
            .claim("ext", &BTreeMap::new(), true, "task3")
            .expect_err("external")
            .to_string(),
        "volume ext not found (an external volume is used as it is, never created for a task)"
    );
    assert!(store.get("ext").is_err());
    assert_eq!(lock(&store.claims).get("db").map(|s| s.len()), Some(2));
    store.release("task1");
    store.release("task2");
    assert!(lock(&store.claims).is_empty());
}

#[test]
fn volume_of_maps_only_data_dirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = VolumeStore::open(dir.path()).expect("open");
    assert_eq!(
        store.volume_of(&dir.path().join("db/_data")),
        Some("db".to_string())
    );
    assert_eq!(store.volume_of(&dir.path().join("db/_data/x")), None);
    assert_eq!(store.volume_of(&dir.path().join("db")), None);
    assert_eq!(store.volume_of(Path::new("/srv/db/_data")), None);
}

#[test]
fn image_content_is_copied_into_an_empty_volume_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("srv/www/sub")).expect("mkdir");
    std::fs::write(root.join("srv/www/index.html"), "hello").expect("write");
    std::fs::write(root.join("srv/www/sub/a"), "a").expect("write");
    std::os::unix::fs::symlink("index.html", root.join("srv/www/link")).expect("link");
    std::fs::set_permissions(root.join("srv/www"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    // /web -> /srv/www, resolved inside the root, not on the host.
    std::os::unix::fs::symlink("/srv/www", root.join("web")).expect("link");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    assert!(copy_image_content(&root, "/web", &data).expect("copy"));
    assert_eq!(
        std::fs::read_to_string(data.join("index.html")).expect("read"),
        "hello"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("sub/a")).expect("read"),
        "a"
    );
    assert_eq!(
        std::fs::read_link(data.join("link")).expect("link"),
        Path::new("index.html")
    );
    assert_eq!(mode(&data), 0o750);
    // Not empty any more: nothing is copied over what is there.
    std::fs::write(root.join("srv/www/index.html"), "changed").expect("write");
    assert!(!copy_image_content(&root, "/web", &data).expect("copy"));
    assert_eq!(
        std::fs::read_to_string(data.join("index.html")).expect("read"),
        "hello"
    );
    // A missing path copies nothing.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    assert!(!copy_image_content(&root, "/nope", &other).expect("copy"));
}

#[test]
fn paths_resolve_inside_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::os::unix::fs::symlink("../../../../etc", root.join("a/b/up")).expect("link");
    std::os::unix::fs::symlink("loop", root.join("loop")).expect("link");
    assert_eq!(resolve_in_root(root, "/a/b/up"), Some(root.join("etc")));
    assert_eq!(resolve_in_root(root, "/../a/./b"), Some(root.join("a/b")));
    assert_eq!(resolve_in_root(root, "/loop"), None);
    assert_eq!(resolve_in_root(root, "/missing"), None);
}

#[test]
fn disk_usage_counts_file_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("d")).expect("mkdir");
    std::fs::write(dir.path().join("d/f"), vec![0u8; 1000]).expect("write");
    std::fs::write(dir.path().join("g"), vec![0u8; 24]).expect("write");
    assert_eq!(disk_usage(dir.path()), 1024);
}
