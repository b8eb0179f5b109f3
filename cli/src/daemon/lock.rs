//! The data dir's lock: one daemon per data dir. `<data-dir>/rswarm.pid` is
//! held with an exclusive `flock` for the daemon's lifetime and holds its pid;
//! a second daemon finds the lock taken and names that pid. The kernel drops
//! the lock when the holder dies, so a file left by a `kill -9` blocks nobody.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the data dir.
pub(crate) const PID_FILE: &str = "rswarm.pid";

/// Held for as long as the daemon runs; dropping it releases the lock.
pub(crate) struct DataDirLock {
    _file: Flock<File>,
    pub path: PathBuf,
}

/// Takes the data dir's lock and writes this process's pid in it, or fails
/// with a one-line error naming the pid of the daemon that holds it.
pub(crate) fn lock_data_dir(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = data_dir.join(PID_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            match text.trim().parse::<u32>() {
                Ok(pid) => bail!(
                    "another rswarm daemon (pid {pid}) is using the data dir {}",
                    data_dir.display()
                ),
                Err(_) => bail!(
                    "another rswarm daemon is using the data dir {} (it has not written its pid to {} yet)",
                    data_dir.display(),
                    path.display()
                ),
            }
        }
        Err((_, e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    };
    let pid = std::process::id();
    locked
        .set_len(0)
        .and_then(|()| locked.rewind())
        .and_then(|()| writeln!(locked, "{pid}"))
        .and_then(|()| locked.sync_all())
        .with_context(|| format!("writing the pid to {}", path.display()))?;
    Ok(DataDirLock {
        _file: locked,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_lock_is_free_again() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = lock_data_dir(dir.path())?;
        let again = lock_data_dir(dir.path());
        let msg = match again {
            Ok(_) => panic!("a second lock on the same data dir was granted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            msg.contains(&format!("(pid {})", std::process::id())),
            "message does not name the holder: {msg}"
        );
        drop(first);
        let third = lock_data_dir(dir.path())?;
        assert_eq!(
            std::fs::read_to_string(&third.path)?.trim(),
            std::process::id().to_string()
        );
        Ok(())
    }
}
