//! The store heals: a manager whose data dir is on a small tmpfs runs out of
//! space for real. The write that hits the full disk fails with the reason in
//! words, reads keep working, and once space is freed writes work again on the
//! same `Store` (no restart). Needs root for `mount` (fails loudly without it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::StoreError;

/// A tmpfs of `size` mounted on a directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("create mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs root to mount a tmpfs at {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes zeros to `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0u8; chunk];
        while file.write_all(&buf).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_and_the_store_heals_once_space_is_back() {
    bounded(Duration::from_secs(150), async {
        let root = tempfile::tempdir().expect("tempdir");
        let disk = Tmpfs::mount(&root.path().join("disk"), "24m");
        let node = Node::fresh(&disk.dir, 1, &|_| {}).await;
        node.store.bootstrap().await.expect("bootstrap");
        for i in 0..5 {
            node.store
                .write(vec![put("service", &format!("before-{i}"), "v", None)])
                .await
                .expect("write before the disk is full");
        }

        let filler = disk.dir.join("filler");
        let filled = fill(&filler);
        assert!(filled > 0, "the filler wrote nothing");

        // Write bigger and bigger objects until one fails; sled may still have
        // room in segments it already holds.
        let value = "x".repeat(64 << 10);
        let mut failure = None;
        let mut accepted = 0;
        for i in 0..2_000 {
            match node
                .store
                .write(vec![put("service", &format!("full-{i}"), &value, None)])
                .await
            {
                Ok(_) => accepted += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let failure = failure.expect("no write failed on a full disk");
        assert!(
            matches!(&failure, StoreError::WriteFailed(reason) if reason == "no space left on device"),
            "after {accepted} accepted writes, the failure was: {failure}"
        );
        assert_eq!(
            failure.to_string(),
            "the manager could not write to its store: no space left on device"
        );

        // Reads keep working, and writes keep failing at once with the same words.
        let before = node.store.get("service", "before-0").expect("read on a full disk");
        assert!(before.is_some(), "an object written before the disk filled is gone");
        assert!(node.store.list("service").expect("list on a full disk").len() >= 5);
        let again = node
            .store
            .write(vec![put("service", "while-full", "v", None)])
            .await
            .expect_err("a write succeeded on a full disk");
        assert_eq!(
            again.to_string(),
            "the manager could not write to its store: no space left on device"
        );

        // Space is back: the same store takes writes again.
        std::fs::remove_file(&filler).expect("remove filler");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let index = loop {
            match node
                .store
                .write(vec![put("service", "after", "v", None)])
                .await
            {
                Ok(index) => break index,
                Err(StoreError::WriteFailed(_) | StoreError::NoLeader)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the store did not heal after space was freed: {e}"),
            }
        };
        let after = node.store.get("service", "after").expect("read after healing");
        assert_eq!(after.map(|o| o.version), Some(index));
        assert!(node.store.get("service", "before-4").expect("read").is_some());
        assert_eq!(node.store.status().state, "Leader");
        node.stop().await;
        drop(disk);
    })
    .await;
}
