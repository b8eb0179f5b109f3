//! Tests against the real runc and overlayfs (run as root). They fail, never
//! skip, when runc or a static busybox is missing (`apt-get install -y runc
//! busybox-static`). The image is built here: a base layer with busybox and
//! its applets, users and groups, and a top layer over it.
//!
//! The test binary doubles as the container init: a constructor in
//! `.init_array` routes `<test binary> container-init -- …` to
//! [`container_init_main`] before the test harness starts.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::*;

extern "C" fn container_init_hook(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    _envp: *const *const libc::c_char,
) {
    if argc < 2 || argv.is_null() {
        return;
    }
    // SAFETY: the loader passes `argc` valid NUL-terminated strings in `argv`.
    let args: Vec<String> = (0..argc as usize)
        .map(|i| {
            unsafe { CStr::from_ptr(*argv.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if args[1] == "container-init" {
        container_init_main(args[2..].to_vec());
    }
}

#[used]
#[link_section = ".init_array"]
static CONTAINER_INIT_HOOK: extern "C" fn(
    libc::c_int,
    *const *const libc::c_char,
    *const *const libc::c_char,
) = container_init_hook;

const WAIT: Duration = Duration::from_secs(30);

fn runc_path() -> PathBuf {
    for d in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(d).join("runc");
        if p.exists() {
            return p;
        }
    }
    panic!("runc is not installed: apt-get install -y runc");
}

fn busybox_path() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(p);
        if p.exists() {
            let is_static = !elf_has_interpreter(p);
            assert!(
                is_static,
                "{} is not static: apt-get install -y busybox-static",
                p.display()
            );
            return p.to_path_buf();
        }
    }
    panic!("busybox is not installed: apt-get install -y busybox-static");
}

/// Whether an ELF file asks for a dynamic loader (has a PT_INTERP program
/// header), read from the file itself so no `file` tool is needed. Panics on a
/// file that is not a 64-bit little-endian ELF.
fn elf_has_interpreter(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 64 && bytes[..4] == *b"\x7fELF" && bytes[4] == 2 && bytes[5] == 1,
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")) as usize;
    let (entsize, count) = (u16_at(54), u16_at(56));
    (0..count).any(|i| {
        let at = phoff + i * entsize;
        bytes.get(at..at + 4) == Some(&3u32.to_le_bytes()[..]) // PT_INTERP
    })
}

/// A data dir and a two-layer busybox image.
struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    layers: Vec<PathBuf>,
    runc: PathBuf,
    prefix: String,
}

fn write(p: &Path, content: &str) {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, content).expect("write file");
}

fn fixture(name: &str) -> Fixture {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runtime tests need root"
    );
    let runc = runc_path();
    let busybox = busybox_path();
    let tmp = tempfile::Builder::new()
        .prefix("rswarm-rt-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let base = tmp.path().join("layers/base");
    let top = tmp.path().join("layers/top");
    std::fs::create_dir_all(base.join("bin")).expect("mkdir bin");
    std::fs::copy(&busybox, base.join("bin/busybox")).expect("copy busybox");
    let list = std::process::Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && !applet.contains('/') && applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", base.join("bin").join(applet));
        }
    }
    write(
        &base.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    write(
        &base.join("etc/group"),
        "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n",
    );
    write(&base.join("marker"), "base\n");
    std::fs::create_dir_all(base.join("tmp")).expect("mkdir tmp");
    write(&top.join("marker"), "top\n");
    write(&top.join("etc/top-only"), "from the top layer\n");
    let data = tmp.path().join("data");
    Fixture {
        data,
        layers: vec![base, top],
        runc,
        prefix: format!("rt{}-{name}", std::process::id()),
        _tmp: tmp,
    }
}

impl Fixture {
    /// `Runtime::new`: the test binary is the init, as the daemon's would be.
    fn runtime(&self) -> Arc<Runtime> {
        Runtime::new(&self.data, self.runc.clone()).expect("Runtime::new")
    }

    fn id(&self, n: &str) -> String {
        format!("{}-{n}", self.prefix)
    }

    fn config(&self, id: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            id: id.to_string(),
            layers: self.layers.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            resolv_conf: "nameserver 127.0.0.11\n".into(),
            ..Default::default()
        }
    }

    /// Deletes the container and its mounts when dropped, even on failure.
    fn guard(&self, id: &str) -> Guard {
        Guard {
            runc: self.runc.clone(),
            data: self.data.clone(),
            id: id.to_string(),
        }
    }
}

struct Guard {
    runc: PathBuf,
    data: PathBuf,
    id: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.runc)
            .arg("--root")
            .arg(self.data.join("runc"))
            .args(["delete", "--force", &self.id])
            .stderr(std::process::Stdio::null())
            .status();
        let bundle = self.data.join("containers").join(&self.id);
        for m in [bundle.join("rootfs"), bundle.join("files")] {
            for _ in 0..8 {
                if nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).is_err() {
                    break;
                }
            }
        }
    }
}

/// Mount points at or under `path`, from /proc/self/mountinfo.
fn mounts_under(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(cgroups::unescape_mountinfo))
        .filter(|m| m.starts_with(&p))
        .collect()
}

async fn collect(mut rx: mpsc::Receiver<LogLine>) -> Vec<LogLine> {
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(l)) => out.push(l),
            Ok(None) => return out,
            Err(_) => panic!("log stream did not end; got {:?}", text(&out)),
        }
    }
}

fn text(lines: &[LogLine]) -> String {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.data).into_owned())
        .collect()
}

/// Reads the followed log until a line contains `needle`.
async fn wait_for_line(rx: &mut mpsc::Receiver<LogLine>, needle: &str) -> Vec<LogLine> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(l)) => {
                let hit = String::from_utf8_lossy(&l.data).contains(needle);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Ok(None) => panic!("log ended before {needle:?}: {:?}", text(&seen)),
            Err(_) => panic!("no {needle:?} in the log: {:?}", text(&seen)),
        }
    }
}

/// Creates, starts and waits for a container; returns its status and output.
async fn run(rt: &Runtime, cfg: &ContainerConfig) -> (ExitStatus, Vec<LogLine>) {
    rt.create(cfg).await.expect("create");
    let pid = rt.start(&cfg.id).await.expect("start");
    assert!(pid > 0);
    let st = tokio::time::timeout(WAIT, rt.wait(&cfg.id))
        .await
        .expect("exit in time")
        .expect("wait");
    let lines = collect(rt.logs(&cfg.id, -1, 0, true).expect("logs")).await;
    (st, lines)
}

async fn remove_and_check(rt: &Runtime, f: &Fixture, id: &str) {
    rt.remove(id).await.expect("remove");
    let bundle = f.data.join("containers").join(id);
    assert!(
        mounts_under(&bundle).is_empty(),
        "mounts left: {:?}",
        mounts_under(&bundle)
    );
    assert!(!bundle.join("config.json").exists());
    assert!(!bundle.join("rootfs").exists());
    assert!(matches!(rt.state(id).await, Err(RuntimeError::NotFound(_))));
    rt.remove(id).await.expect("remove again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_hello_is_logged_with_timestamps_and_exit_zero() {
    let f = fixture("echo");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let before = logs::now_ns();
    let cfg = f.config(&id, &["sh", "-c", "echo hello; cat /marker; echo oops >&2"]);
    let (st, lines) = run(&rt, &cfg).await;
    let after = logs::now_ns();
    assert_eq!(
        st,
        ExitStatus {
            code: Some(0),
            oom_killed: false
        }
    );
    let out: Vec<&LogLine> = lines.iter().filter(|l| l.stream == 1).collect();
    assert_eq!(out.len(), 2, "{lines:?}");
    assert_eq!(out[0].data, b"hello\n");
    assert_eq!(out[1].data, b"top\n", "the top layer wins");
    assert!(out[0].timestamp_ns >= before && out[0].timestamp_ns <= after);
    let err: Vec<&LogLine> = lines.iter().filter(|l| l.stream == 2).collect();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].data, b"oops\n");
    // The log file holds the same, as JSON lines.
    let file = std::fs::read_to_string(f.data.join("containers").join(&id).join("log.jsonl"))
        .expect("log file");
    assert_eq!(file.lines().count(), 3);
    assert!(file.contains("\"log\":\"hello\\n\""));
    // tail and since.
    let last = collect(rt.logs(&id, 1, 0, false).expect("logs")).await;
    assert_eq!(last.len(), 1);
    let since = collect(rt.logs(&id, -1, out[1].timestamp_ns, false).expect("logs")).await;
    assert!(since.iter().all(|l| l.timestamp_ns >= out[1].timestamp_ns));
    assert_eq!(
        rt.state(&id).await.expect("state").status,
        ContainerStatus::Stopped
    );
    assert_eq!(rt.wait(&id).await.expect("wait again").code, Some(0));
    assert!(rt.list().expect("list").contains(&id));
    remove_and_check(&rt, &f, &id).await;
    // The log outlives the container until remove_logs.
    // stdout and stderr come through separate pipes: their relative order is
    // not kept, each stream's own order is.
    let after_remove = collect(rt.logs(&id, -1, 0, true).expect("logs after remove")).await;
    let stream = |n: u8| -> Vec<LogLine> {
        after_remove
            .iter()
            .filter(|l| l.stream == n)
            .cloned()
            .collect()
    };
    assert_eq!(text(&stream(1)), "hello\ntop\n");
    assert_eq!(text(&stream(2)), "oops\n");
    assert!(!rt.list().expect("list").contains(&id));
    rt.remove_logs(&id).expect("remove_logs");
    assert!(!f.data.join("containers").join(&id).exists());
    assert!(matches!(
        rt.logs(&id, -1, 0, false),
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_is_reported() {
    let f = fixture("exit3");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let (st, _) = run(&rt, &f.config(&id, &["sh", "-c", "exit 3"])).await;
    assert_eq!(
        st,
        ExitStatus {
            code: Some(3),
            oom_killed: false
        }
    );
    remove_and_check(&rt, &f, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_oom_kills() {
    let f = fixture("oom");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let mut cfg = f.config(
        &id,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    cfg.memory_bytes = 32 * 1024 * 1024;
    let (st, lines) = run(&rt, &cfg).await;
    assert_eq!(
        st,
        ExitStatus {
            code: Some(137),
            oom_killed: true
        },
        "output: {:?}",
        text(&lines)
    );
    // Where the OOM count was read on this machine.
    let dir = cgroups::memory_dir(&cgroups::cgroups_path(&id)).expect("memory cgroup");
    if cgroups::is_unified() {
        assert!(dir.starts_with("/sys/fs/cgroup/rswarm"));
    } else {
        let mount = cgroups::v1_memory_mount().expect("v1 memory controller");
        assert!(dir.starts_with(&mount), "{dir:?} under {mount:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .expect("limit")
                .trim(),
            "33554432"
        );
    }
    assert!(cgroups::oom_kill_count(&cgroups::cgroups_path(&id)).unwrap_or(0) >= 1);
    remove_and_check(&rt, &f, &id).await;
    assert!(!dir.exists(), "runc delete removes the cgroup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_the_grace_then_kills() {
    let f = fixture("stop");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while true; do sleep 1; done",
        ],
    );
    rt.create(&cfg).await.expect("create");
    rt.start(&id).await.expect("start");
    let mut follow = rt.logs(&id, -1, 0, true).expect("logs");
    wait_for_line(&mut follow, "ready").await;
    let t = Instant::now();
    rt.stop(&id, "SIGTERM", Duration::from_millis(1500))
        .await
        .expect("stop");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "stopped after {took:?}, before the grace"
    );
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    assert_eq!(rt.wait(&id).await.expect("wait").code, Some(137));
    rt.stop(&id, "TERM", Duration::from_secs(1))
        .await
        .expect("stopping a stopped container");
    remove_and_check(&rt, &f, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_a_handled_signal_is_quick() {
    let f = fixture("stopq");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ],
    );
    rt.create(&cfg).await.expect("create");
    rt.start(&id).await.expect("start");
    let mut follow = rt.logs(&id, -1, 0, true).expect("logs");
    wait_for_line(&mut follow, "ready").await;
    let t = Instant::now();
    rt.stop(&id, "15", Duration::from_secs(20))
        .await
        .expect("stop");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(rt.wait(&id).await.expect("wait").code, Some(0));
    wait_for_line(&mut follow, "bye").await;
    assert!(rt
        .stop(&id, "SIGNOPE", Duration::from_secs(1))
        .await
        .is_err());
    remove_and_check(&rt, &f, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_hosts_and_resolv_conf() {
    let f = fixture("etc");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let mut cfg = f.config(
        &id,
        &["sh", "-c", "hostname; cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf; echo '10.9.9.9 extra' >> /etc/hosts && echo writable"],
    );
    cfg.hostname = "web-1".into();
    cfg.hosts = vec![("10.1.2.3".into(), vec!["db".into(), "db.local".into()])];
    cfg.resolv_conf = "nameserver 10.0.0.2\nsearch example\n".into();
    let (st, lines) = run(&rt, &cfg).await;
    assert_eq!(st.code, Some(0), "{:?}", text(&lines));
    let out = text(&lines);
    let mut it = out.lines();
    assert_eq!(it.next(), Some("web-1"));
    assert_eq!(it.next(), Some("web-1"));
    assert!(out.contains("127.0.0.1\tlocalhost\n"));
    assert!(out.contains("127.0.1.1\tweb-1\n"));
    assert!(out.contains("10.1.2.3\tdb db.local\n"));
    assert!(out.contains("nameserver 10.0.0.2\nsearch example\n"));
    assert!(out.contains("writable"));
    remove_and_check(&rt, &f, &id).await;

    // Default hostname: the first 12 characters of the id.
    let id2 = f.id("default-hostname");
    let _g2 = f.guard(&id2);
    let (_, lines) = run(&rt, &f.config(&id2, &["hostname"])).await;
    assert_eq!(text(&lines).trim(), &id2[..12]);
    remove_and_check(&rt, &f, &id2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_groups() {
    let f = fixture("user");
    let rt = f.runtime();
    let id = f.id("num");
    let _g = f.guard(&id);
    let mut cfg = f.config(&id, &["sh", "-c", "id -u; id -g"]);
    cfg.user = "1000:1000".into();
    let (st, lines) = run(&rt, &cfg).await;
    assert_eq!(st.code, Some(0));
    assert_eq!(text(&lines), "1000\n1000\n");
    remove_and_check(&rt, &f, &id).await;

    let id2 = f.id("name");
    let _g2 = f.guard(&id2);
    let mut cfg = f.config(&id2, &["sh", "-c", "id -u; id -G; echo $HOME"]);
    cfg.user = "app".into();
    cfg.groups = vec!["nogroup".into()];
    let (st, lines) = run(&rt, &cfg).await;
    assert_eq!(st.code, Some(0));
    let out = text(&lines);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000");
    let groups: Vec<&str> = l[1].split(' ').collect();
    assert!(
        groups.contains(&"1000") && groups.contains(&"50") && groups.contains(&"65534"),
        "{groups:?}"
    );
    assert_eq!(l[2], "/home/app");
    remove_and_check(&rt, &f, &id2).await;

    let mut bad = f.config(&f.id("bad"), &["true"]);
    bad.user = "nosuchuser".into();
    assert!(matches!(
        rt.create(&bad).await,
        Err(RuntimeError::InvalidConfig(_))
    ));
    let bundle = f.data.join("containers").join(&bad.id);
    assert!(!bundle.exists(), "a failed create leaves nothing");
    assert!(mounts_under(&bundle).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_rootfs_with_a_tmpfs() {
    let f = fixture("ro");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let mut cfg = f.config(
        &id,
        &["sh", "-c", "touch /foo && echo wrote-root; touch /scratch/ok && echo wrote-tmpfs; stat -c %a /scratch"],
    );
    cfg.read_only_rootfs = true;
    cfg.mounts = vec![MountConfig {
        kind: MountKind::Tmpfs,
        target: "/scratch".into(),
        tmpfs_size: 1 << 20,
        tmpfs_mode: 0o755,
        ..Default::default()
    }];
    let (st, lines) = run(&rt, &cfg).await;
    assert_eq!(st.code, Some(0));
    let out = text(&lines);
    assert!(!out.contains("wrote-root"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("wrote-tmpfs"), "{out}");
    assert!(out.contains("755\n"), "{out}");
    remove_and_check(&rt, &f, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_config_files_are_read_only_on_a_tmpfs_with_owner_and_mode() {
    let f = fixture("files");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let value = "s3cr3t-value-files-test";
    let mut cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "cat /run/secrets/pw; echo; stat -c '%u %g %a' /run/secrets/pw /etc/app.conf; \
             echo x > /run/secrets/pw || echo ro-refused; sleep 30",
        ],
    );
    cfg.read_only_rootfs = true;
    cfg.files = vec![
        ContainerFile {
            target: "/run/secrets/pw".into(),
            data: value.as_bytes().to_vec(),
            uid: 1000,
            gid: 1001,
            mode: 0o400,
        },
        ContainerFile {
            target: "/etc/app.conf".into(),
            data: b"conf\n".to_vec(),
            uid: 0,
            gid: 0,
            mode: 0o444,
        },
    ];
    assert!(
        !format!("{cfg:?}").contains(value),
        "no value in debug output"
    );
    rt.create(&cfg).await.expect("create");
    rt.start(&id).await.expect("start");
    let mut logs = rt.logs(&id, -1, 0, true).expect("logs");
    let seen = text(&wait_for_line(&mut logs, "ro-refused").await);
    assert!(seen.contains(value), "{seen}");
    assert!(seen.contains("1000 1001 400\n0 0 444\n"), "{seen}");
    // On the host the value lives only on the bundle's tmpfs (and in the
    // log, where this container printed it)...
    let bundle = f.data.join("containers").join(&id);
    let files = bundle.join("files");
    assert_eq!(
        nix::sys::statfs::statfs(&files)
            .expect("statfs")
            .filesystem_type(),
        nix::sys::statfs::TMPFS_MAGIC
    );
    assert!(mounts_under(&bundle).iter().any(|m| m.ends_with("/files")));
    let on_disk = std::process::Command::new("grep")
        .args([
            "-rl",
            "--exclude-dir=files",
            "--exclude-dir=rootfs",
            "--exclude=log.jsonl",
            value,
        ])
        .arg(&bundle)
        .output()
        .expect("grep");
    assert!(
        on_disk.stdout.is_empty(),
        "value on disk: {}",
        String::from_utf8_lossy(&on_disk.stdout)
    );
    // ...which goes with the container.
    rt.stop(&id, "SIGKILL", Duration::from_secs(1))
        .await
        .expect("stop");
    remove_and_check(&rt, &f, &id).await;
    assert!(!files.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mounts_read_only_and_read_write() {
    let f = fixture("bind");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let host = f.data.join("host-dir");
    std::fs::create_dir_all(&host).expect("mkdir");
    write(&host.join("in"), "from host\n");
    let mut cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "cat /ro/in; touch /ro/x || echo ro-refused; echo hi > /rw/out",
        ],
    );
    cfg.mounts = vec![
        MountConfig {
            kind: MountKind::Bind,
            source: host.clone(),
            target: "/ro".into(),
            read_only: true,
            ..Default::default()
        },
        MountConfig {
            kind: MountKind::Volume,
            source: host.clone(),
            target: "/rw".into(),
            ..Default::default()
        },
    ];
    let (st, lines) = run(&rt, &cfg).await;
    assert_eq!(st.code, Some(0));
    let out = text(&lines);
    assert!(
        out.contains("from host") && out.contains("ro-refused"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("out")).expect("written through the mount"),
        "hi\n"
    );
    remove_and_check(&rt, &f, &id).await;
    assert!(host.join("in").exists(), "remove leaves bind sources alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_in_a_running_container() {
    let f = fixture("exec");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let mut cfg = f.config(&id, &["sleep", "1000"]);
    cfg.hostname = "exec-host".into();
    rt.create(&cfg).await.expect("create");
    let no = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec!["true".into()],
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(no, Err(RuntimeError::NotRunning(_))),
        "exec before start"
    );
    rt.start(&id).await.expect("start");

    let mut p = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec!["cat".into(), "/etc/hostname".into()],
                ..Default::default()
            },
        )
        .await
        .expect("exec cat");
    let mut out = String::new();
    p.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    assert_eq!(out, "exec-host\n");
    assert_eq!(tokio::time::timeout(WAIT, p.wait()).await.expect("exit"), 0);

    let mut p = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec!["sh".into(), "-c".into(), "echo err >&2; exit 5".into()],
                ..Default::default()
            },
        )
        .await
        .expect("exec exit 5");
    let mut err = String::new();
    p.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .await
        .expect("read");
    assert_eq!(err, "err\n");
    assert_eq!(tokio::time::timeout(WAIT, p.wait()).await.expect("exit"), 5);

    // stdin.
    let mut p = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec!["cat".into()],
                stdin: true,
                ..Default::default()
            },
        )
        .await
        .expect("exec cat stdin");
    let mut stdin = p.stdin.take().expect("stdin");
    stdin.write_all(b"ping\n").await.expect("write");
    drop(stdin);
    let mut out = String::new();
    p.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    assert_eq!(out, "ping\n");
    assert_eq!(p.wait().await, 0);

    // User, cwd and env.
    let mut p = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec!["sh".into(), "-c".into(), "id -u; pwd; echo $FOO".into()],
                user: "1000".into(),
                cwd: "/tmp".into(),
                env: vec!["FOO=bar".into()],
                ..Default::default()
            },
        )
        .await
        .expect("exec as 1000");
    let mut out = String::new();
    p.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    assert_eq!(out, "1000\n/tmp\nbar\n");
    assert_eq!(p.wait().await, 0);

    // A tty.
    let mut p = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec![
                    "sh".into(),
                    "-c".into(),
                    "tty; read go; stty size; echo hi; exit 4".into(),
                ],
                tty: true,
                ..Default::default()
            },
        )
        .await
        .expect("exec tty");
    assert!(p.stdout.is_none() && p.stderr.is_none());
    let mut pty = p.pty.take().expect("pty");
    pty.resize(40, 100).expect("resize");
    pty.writer
        .write_all(b"go\n")
        .await
        .expect("type into the pty");
    let reader = &mut pty.reader;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, reader.read(&mut chunk))
            .await
            .expect("pty output")
        {
            Ok(0) | Err(_) => break, // EIO once the terminal is closed
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let out = String::from_utf8_lossy(&buf);
    assert!(
        out.contains("/dev/pts/") && out.contains("hi") && out.contains("40 100"),
        "{out:?}"
    );
    assert_eq!(p.wait().await, 4);

    // A missing command is an error.
    let e = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec!["/no/such".into()],
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(e, Err(RuntimeError::Runc { .. })), "{e:?}");

    // A process killed by a signal.
    let mut p = rt
        .exec(
            &id,
            &ExecConfig {
                args: vec!["sh".into(), "-c".into(), "kill -9 $$".into()],
                ..Default::default()
            },
        )
        .await
        .expect("exec kill");
    assert_eq!(p.wait().await, 137);

    rt.stop(&id, "SIGTERM", Duration::from_millis(200))
        .await
        .expect("stop");
    remove_and_check(&rt, &f, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_is_pid_1_and_passes_the_exit_code() {
    let f = fixture("init");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let mut cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "echo pid=$$; tr '\\0' ' ' < /proc/1/cmdline; echo; exit 7",
        ],
    );
    cfg.init = true;
    let (st, lines) = run(&rt, &cfg).await;
    let out = text(&lines);
    assert_eq!(st.code, Some(7), "{out}");
    assert!(
        out.contains("pid=") && !out.contains("pid=1\n"),
        "the command is not PID 1: {out}"
    );
    assert!(
        out.contains("/.rswarm/init container-init -- sh -c"),
        "{out}"
    );
    remove_and_check(&rt, &f, &id).await;

    // The init forwards SIGTERM to its child, which (not being PID 1) dies of it.
    let id2 = f.id("term");
    let _g2 = f.guard(&id2);
    let mut cfg = f.config(&id2, &["sleep", "1000"]);
    cfg.init = true;
    rt.create(&cfg).await.expect("create");
    rt.start(&id2).await.expect("start");
    // The init has started its child (`sleep`) before it is signalled.
    let init = rt.state(&id2).await.expect("state").pid;
    let children = format!("/proc/{init}/task/{init}/children");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&children)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the init never started its child"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rt.stop(&id2, "SIGTERM", Duration::from_secs(20))
        .await
        .expect("stop");
    // 143 = killed by SIGTERM: forwarded (without forwarding the stop would have
    // ended in SIGKILL, 137).
    assert_eq!(rt.wait(&id2).await.expect("wait").code, Some(143));
    remove_and_check(&rt, &f, &id2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_container_output_is_logged() {
    let f = fixture("tty");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    let mut cfg = f.config(&id, &["sh", "-c", "tty; echo $TERM; exit 2"]);
    cfg.tty = true;
    let (st, lines) = run(&rt, &cfg).await;
    let out = text(&lines);
    assert_eq!(st.code, Some(2), "{out}");
    assert!(
        out.contains("/dev/pts/0") && out.contains("xterm"),
        "{out:?}"
    );
    remove_and_check(&rt, &f, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_failed_containers() {
    let f = fixture("unknown");
    let rt = f.runtime();
    let id = f.id("nosuch");
    assert!(matches!(
        rt.state(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(matches!(rt.wait(&id).await, Err(RuntimeError::NotFound(_))));
    assert!(matches!(
        rt.stop(&id, "TERM", Duration::from_secs(1)).await,
        Err(RuntimeError::NotFound(_))
    ));
    rt.remove(&id).await.expect("removing an unknown container");
    assert!(matches!(
        rt.create(&f.config("../evil", &["true"])).await,
        Err(RuntimeError::InvalidConfig(_))
    ));

    // runc refuses a missing executable at create: its message comes back, nothing stays.
    let id = f.id("missing");
    let _g = f.guard(&id);
    let e = rt.create(&f.config(&id, &["/no/such/binary"])).await;
    match e {
        Err(RuntimeError::Runc { op, message }) => {
            assert_eq!(op, "create");
            assert!(message.contains("/no/such/binary"), "{message}");
        }
        other => panic!("expected a runc error, got {other:?}"),
    }
    let bundle = f.data.join("containers").join(&id);
    assert!(!bundle.exists());
    assert!(mounts_under(&bundle).is_empty());

    // Creating the same id twice.
    let id = f.id("twice");
    let _g = f.guard(&id);
    rt.create(&f.config(&id, &["true"])).await.expect("create");
    assert!(matches!(
        rt.create(&f.config(&id, &["true"])).await,
        Err(RuntimeError::AlreadyExists(_))
    ));
    assert_eq!(
        rt.state(&id).await.expect("state").status,
        ContainerStatus::Created
    );
    // Removing a created (never started) container.
    remove_and_check(&rt, &f, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_containers_running_and_logging() {
    let f = fixture("restart");
    let id = f.id("c");
    let _g = f.guard(&id);
    let rt1 = f.runtime();
    let cfg = f.config(
        &id,
        &[
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done",
        ],
    );
    rt1.create(&cfg).await.expect("create");
    let pid = rt1.start(&id).await.expect("start");
    let mut follow = rt1.logs(&id, -1, 0, true).expect("logs");
    wait_for_line(&mut follow, "line 5\n").await;
    drop(follow);
    drop(rt1);
    // The daemon is "down": output waits in the pipe.
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A new daemon: as after a real restart, the container is not its child.
    let me = std::env::current_exe().expect("current_exe");
    let rt2 = Runtime::build(&f.data, f.runc.clone(), me, true).expect("Runtime::new again");
    let st = rt2.state(&id).await.expect("state");
    assert_eq!(
        st,
        ContainerState {
            status: ContainerStatus::Running,
            pid
        }
    );
    assert!(rt2.list().expect("list").contains(&id));
    let mut follow = rt2.logs(&id, 0, 0, true).expect("logs");
    let seen = wait_for_line(&mut follow, "line 40\n").await;
    assert!(!seen.is_empty());

    // Exec still works on the adopted container.
    let mut p = rt2
        .exec(
            &id,
            &ExecConfig {
                args: vec!["echo".into(), "adopted".into()],
                ..Default::default()
            },
        )
        .await
        .expect("exec");
    let mut out = String::new();
    p.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    assert_eq!(out, "adopted\n");
    assert_eq!(p.wait().await, 0);

    // sh as PID 1 ignores SIGTERM: the grace runs out, then SIGKILL.
    rt2.stop(&id, "SIGTERM", Duration::from_millis(300))
        .await
        .expect("stop");
    let st = rt2.wait(&id).await.expect("wait");
    assert_eq!(
        st,
        ExitStatus {
            code: None,
            oom_killed: false
        },
        "exit code unknown across a restart"
    );
    drop(follow);

    // No line lost across the restart: the numbers run without a gap.
    let all = text(&collect(rt2.logs(&id, -1, 0, true).expect("logs")).await);
    let nums: Vec<u64> = all
        .lines()
        .filter_map(|l| l.strip_prefix("line ").and_then(|n| n.parse().ok()))
        .collect();
    assert!(nums.len() > 40, "{} lines", nums.len());
    for (i, n) in nums.iter().enumerate() {
        assert_eq!(*n, i as u64, "line {i} is {n}: lines were lost or repeated");
    }
    remove_and_check(&rt2, &f, &id).await;
}

/// Cgroup directories of a container in any hierarchy (`/sys/fs/cgroup/*/rswarm/<id>`
/// on v1 and hybrid hosts, `/sys/fs/cgroup/rswarm/<id>` on v2).
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut found: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|e| {
            e.flatten()
                .map(|e| e.path().join("rswarm").join(id))
                .collect()
        })
        .unwrap_or_default();
    found.push(base.join("rswarm").join(id));
    found.into_iter().filter(|d| d.is_dir()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_created_container_deletes_it_and_removal_leaves_no_cgroup() {
    let f = fixture("created");
    let rt = f.runtime();
    let id = f.id("c");
    let _g = f.guard(&id);
    rt.create(&f.config(&id, &["sleep", "60"]))
        .await
        .expect("create");
    assert_eq!(
        rt.state(&id).await.expect("state").status,
        ContainerStatus::Created
    );
    assert!(!cgroup_dirs(&id).is_empty(), "runc made no cgroup to check");
    // `runc init` waits for `runc start` and takes no signal: stop deletes it, fast
    // (the grace period is not waited).
    let t = Instant::now();
    rt.stop(&id, "SIGTERM", Duration::from_secs(30))
        .await
        .expect("stop a created container");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert!(matches!(
        rt.state(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
    tokio::time::timeout(WAIT, rt.wait(&id))
        .await
        .expect("its init exits")
        .expect("wait");
    remove_and_check(&rt, &f, &id).await;
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());

    // Many at once: every one is created, then removed, with no cgroup left.
    let ids: Vec<String> = (0..12).map(|i| f.id(&format!("m{i}"))).collect();
    let _gs: Vec<_> = ids.iter().map(|id| f.guard(id)).collect();
    let creates = ids.iter().map(|id| {
        let cfg = f.config(id, &["sleep", "60"]);
        let rt = rt.clone();
        async move { rt.create(&cfg).await }
    });
    for r in futures::future::join_all(creates).await {
        r.expect("create");
    }
    for id in &ids {
        rt.start(id).await.expect("start");
    }
    let removes = ids.iter().map(|id| {
        let rt = rt.clone();
        async move { rt.remove(id).await }
    });
    for r in futures::future::join_all(removes).await {
        r.expect("remove");
    }
    for id in &ids {
        assert_eq!(cgroup_dirs(id), Vec::<PathBuf>::new(), "{id}");
        assert!(matches!(rt.state(id).await, Err(RuntimeError::NotFound(_))));
    }
}
