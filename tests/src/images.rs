//! Test images, built on this machine with no network from Debian's static busybox.
//!
//! [`busybox`] is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! with one gzip layer, shaped like an image `docker build` makes: the layer's entries
//! are relative (`bin/`, `bin/busybox`, …), owned by root, and hold
//!
//! - `/bin/busybox` (from the `busybox-static` package) and a symlink to it for every
//!   applet it has (`sh`, `httpd`, `sleep`, `echo`, `cat`, `dd`, `hostname`, `wget`,
//!   `nslookup`, `ls`, `id`, `env`, `true`, `false`, `ps`, `top`, …);
//! - `/etc/passwd` and `/etc/group` with `root` and `nobody`, an empty `/root`, `/tmp`
//!   (mode 1777), `/var/www` and empty mount points `/proc`, `/sys`, `/dev`. Like Docker
//!   Hub's `busybox`, it has no `/etc/hosts`, `/etc/hostname` or `/etc/resolv.conf`:
//!   the runtime provides those.
//!
//! Its config: `Cmd ["sh"]`, `Env ["PATH=/usr/local/sbin:…:/bin"]`, linux/amd64.
//!
//! The layout is built once per test process under `/tmp/rsw<pid>img/` and removed
//! when the process exits (or by `tests/cleanup-leftovers.sh` if it dies). Push it to a
//! cluster's registry with [`crate::Registry::push`] (a [`crate::Cluster`] started
//! `with_registry` already has it as `busybox:1`), or write it as an archive for
//! `rswarm image load` with [`TestImage::write_docker_archive`] and
//! [`TestImage::write_oci_archive`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};

use crate::command::{self, CmdOutput, COMMAND_TIMEOUT};

/// Where Debian's `busybox-static` installs its binary.
pub const BUSYBOX_STATIC: &str = "/bin/busybox";

/// The `PATH` in the test images' config (Docker's default).
pub const IMAGE_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An OCI image layout on disk with one tagged image in it.
#[derive(Debug)]
pub struct TestImage {
    layout: PathBuf,
    tag: String,
    manifest_digest: String,
}

impl TestImage {
    /// The OCI image layout directory.
    pub fn layout(&self) -> &Path {
        &self.layout
    }

    /// The tag of the image in the layout (`org.opencontainers.image.ref.name`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `sha256:…` of the OCI manifest in the layout. (A registry that stores a
    /// converted manifest, see [`crate::Registry::push`], has another digest.)
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    /// The skopeo source for this image: `oci:<layout>:<tag>`.
    pub fn skopeo_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// Writes the image as a `docker save` archive to `dest`, tagged `reference`
    /// (e.g. `loaded/busybox:1`): what `rswarm image load -i dest` reads.
    pub fn write_docker_archive(&self, dest: &Path, reference: &str) -> anyhow::Result<()> {
        remove_if_exists(dest)?;
        skopeo(&[
            "copy",
            &self.skopeo_ref(),
            &format!("docker-archive:{}:{reference}", dest.display()),
        ])
    }

    /// Writes the image as an OCI archive (a tar of an OCI layout) to `dest`, its
    /// manifest named `ref_name` (`org.opencontainers.image.ref.name`, e.g. `1`).
    pub fn write_oci_archive(&self, dest: &Path, ref_name: &str) -> anyhow::Result<()> {
        remove_if_exists(dest)?;
        skopeo(&[
            "copy",
            &self.skopeo_ref(),
            &format!("oci-archive:{}:{ref_name}", dest.display()),
        ])
    }
}

/// The busybox test image (see the module docs), built on first use in this process.
/// Panics, naming what is missing, when it cannot be built.
pub fn busybox() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        build_busybox(&images_dir().join("busybox")).unwrap_or_else(|err| {
            panic!("rswarm-tests: cannot build the busybox test image: {err:#}")
        })
    })
}

/// The busybox image with a `HEALTHCHECK` in its config, as `docker build`
/// writes it: `CMD-SHELL test ! -e /tmp/sick` every second, 1 s timeout, 2
/// retries (a task is unhealthy two seconds after `touch /tmp/sick`).
/// Built once per test process, like [`busybox`].
pub fn busybox_with_healthcheck() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| busybox_checked("busybox-health", "test ! -e /tmp/sick"))
}

/// The busybox image with a `HEALTHCHECK` that always fails (`CMD-SHELL
/// false`, every second, 2 retries): a "bad release" for rolling-update
/// tests. Built once per test process.
pub fn busybox_with_failing_healthcheck() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| busybox_checked("busybox-sick", "false"))
}

/// Builds the busybox image into `images_dir()/<name>` with the check
/// `CMD-SHELL <test>` every second, 1 s timeout, 2 retries.
fn busybox_checked(name: &str, test: &str) -> TestImage {
    let dir = images_dir().join(name);
    let build = || -> anyhow::Result<TestImage> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let rootfs = dir.join("rootfs");
        make_busybox_rootfs(&rootfs)?;
        let healthcheck = serde_json::json!({
            "Test": ["CMD-SHELL", test],
            "Interval": 1_000_000_000u64,
            "Timeout": 1_000_000_000u64,
            "Retries": 2,
        });
        write_oci_layout_with(&dir.join("oci"), &rootfs, "1", Some(healthcheck))
    };
    build().unwrap_or_else(|err| panic!("rswarm-tests: cannot build the {name} image: {err:#}"))
}

/// `/tmp/rsw<pid>img`: this process's test images. Created on first use, removed when
/// the process exits.
pub fn images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/rsw{}img", std::process::id()));
        if dir.exists() {
            // A leftover of a dead process that had our pid.
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        extern "C" fn remove_images_dir() {
            let _ = std::fs::remove_dir_all(format!("/tmp/rsw{}img", std::process::id()));
        }
        // SAFETY: registers a plain function to run at exit; it only removes files.
        unsafe {
            libc::atexit(remove_images_dir);
        }
        dir
    })
}

fn build_busybox(dir: &Path) -> anyhow::Result<TestImage> {
    if !Path::new(BUSYBOX_STATIC).is_file() {
        bail!(
            "{BUSYBOX_STATIC} is missing: apt-get install busybox-static (see tests/packages.txt)"
        );
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let rootfs = dir.join("rootfs");
    make_busybox_rootfs(&rootfs)?;
    let layout = dir.join("oci");
    write_oci_layout(&layout, &rootfs, "1")
}

/// The root filesystem of the busybox image.
fn make_busybox_rootfs(rootfs: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{symlink, PermissionsExt};
    for sub in ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "var/www"] {
        std::fs::create_dir_all(rootfs.join(sub))?;
    }
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::set_permissions(rootfs.join("root"), std::fs::Permissions::from_mode(0o700))?;
    std::fs::copy(BUSYBOX_STATIC, rootfs.join("bin/busybox"))
        .with_context(|| format!("copying {BUSYBOX_STATIC}"))?;
    std::fs::set_permissions(
        rootfs.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let list = run(&[BUSYBOX_STATIC, "--list"])?;
    let applets: Vec<&str> = list
        .stdout
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    for needed in ["sh", "httpd", "sleep", "hostname", "dd", "wget", "nslookup"] {
        if !applets.contains(&needed) {
            bail!("{BUSYBOX_STATIC} has no `{needed}` applet");
        }
    }
    for applet in applets {
        if applet.contains('/') || applet == "busybox" {
            continue;
        }
        symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(
        rootfs.join("var/www/index.html"),
        "hello from busybox httpd\n",
    )?;
    Ok(())
}

/// Writes an OCI image layout at `layout` holding one image, tagged `tag`, whose one
/// layer is `rootfs`.
fn write_oci_layout(layout: &Path, rootfs: &Path, tag: &str) -> anyhow::Result<TestImage> {
    write_oci_layout_with(layout, rootfs, tag, None)
}

/// [`write_oci_layout`], with a `Healthcheck` in the image's config.
fn write_oci_layout_with(
    layout: &Path,
    rootfs: &Path,
    tag: &str,
    healthcheck: Option<serde_json::Value>,
) -> anyhow::Result<TestImage> {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let work = layout.parent().unwrap_or(layout);

    // The layer: entries relative to the root, sorted, owned by root, fixed mtime.
    let tar_path = work.join("layer.tar");
    let mut tar_args = vec![
        "tar".to_string(),
        "--create".into(),
        "--file".into(),
        tar_path.display().to_string(),
        "--directory".into(),
        rootfs.display().to_string(),
        "--sort=name".into(),
        "--owner=0".into(),
        "--group=0".into(),
        "--numeric-owner".into(),
        "--mtime=2024-01-01 00:00:00Z".into(),
    ];
    let mut top: Vec<String> = std::fs::read_dir(rootfs)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    top.sort();
    tar_args.extend(top);
    run_owned(tar_args)?;
    let diff_id = sha256_file(&tar_path)?;
    run(&[
        "gzip",
        "--no-name",
        "--force",
        &tar_path.display().to_string(),
    ])?;
    let gz_path = work.join("layer.tar.gz");
    let layer_digest = sha256_file(&gz_path)?;
    let layer_size = std::fs::metadata(&gz_path)?.len();
    std::fs::rename(&gz_path, blobs.join(hex_of(&layer_digest)))?;

    let created = "2024-01-01T00:00:00Z";
    let mut config = serde_json::json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": [IMAGE_PATH_ENV],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": created, "created_by": "rswarm-tests: busybox-static rootfs"},
            {"created": created, "created_by": "CMD [\"sh\"]", "empty_layer": true},
        ],
    });
    if let Some(h) = healthcheck {
        config["config"]["Healthcheck"] = h;
    }
    let (config_digest, config_size) = write_blob(&blobs, &serde_json::to_vec(&config)?)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = write_blob(&blobs, &serde_json::to_vec(&manifest)?)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(TestImage {
        layout: layout.to_path_buf(),
        tag: tag.to_string(),
        manifest_digest,
    })
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> anyhow::Result<(String, u64)> {
    let staging = blobs.join("staging");
    std::fs::write(&staging, bytes)?;
    let digest = sha256_file(&staging)?;
    std::fs::rename(&staging, blobs.join(hex_of(&digest)))?;
    Ok((digest, bytes.len() as u64))
}

/// `sha256:<hex>` of a file, by coreutils' `sha256sum`.
fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let out = run(&["sha256sum", "--binary", &path.display().to_string()])?;
    match out.stdout.split_whitespace().next() {
        Some(hex) if hex.len() == 64 => Ok(format!("sha256:{hex}")),
        _ => bail!("unexpected sha256sum output: {out}"),
    }
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Runs `skopeo --insecure-policy ARGS` (no signature policy file is needed).
pub(crate) fn skopeo(args: &[&str]) -> anyhow::Result<()> {
    let argv: Vec<String> = ["skopeo", "--insecure-policy"]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect();
    run_owned(argv).map(drop)
}

fn run(argv: &[&str]) -> anyhow::Result<CmdOutput> {
    run_owned(argv.iter().map(|a| a.to_string()).collect())
}

fn run_owned(argv: Vec<String>) -> anyhow::Result<CmdOutput> {
    let out = command::run(&argv, &[], COMMAND_TIMEOUT);
    if !out.success() {
        let hint = match argv[0].as_str() {
            "skopeo" => " (apt-get install skopeo; see tests/packages.txt)",
            _ => "",
        };
        bail!("building a test image failed{hint}:\n{out}");
    }
    Ok(out)
}
