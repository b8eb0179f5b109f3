//! Child processes that die with the test process, and entering a host's namespace.
//!
//! Every child the harness starts asks the kernel for `SIGKILL` when its parent dies
//! (`PR_SET_PDEATHSIG`). The catch: "parent" means the *thread* that forked the child,
//! not the process. Cargo runs each test on a thread of its own that ends with the
//! test, and a cluster may be built on one thread and used on another, so a daemon
//! forked by a test thread could be killed early, or (with the signal left out) could
//! outlive a test process killed by a timeout.
//!
//! The choice made here: long-lived children (daemons and [`crate::Background`]
//! processes) are all forked by one spawner thread that lives as long as the test
//! process ([`spawn_long_lived`]). They die exactly when the test process dies,
//! however it dies. One-shot commands are forked by the calling thread, which blocks
//! until they end, so tying them to that thread is equally right.

use std::ffi::CString;
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// Makes `cmd`'s child get `SIGKILL` when the thread that spawns it dies.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe system calls prctl and getppid.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(io::Error::other(
                    "the test process died while starting a child",
                ));
            }
            Ok(())
        });
    }
}

/// Makes `cmd`'s child enter the network namespace `/var/run/netns/<netns>` before it
/// execs (the same as `nsenter --net=/var/run/netns/<netns>`: only the network
/// namespace changes; mounts, including `/sys/fs/cgroup`, stay the machine's).
pub fn enter_netns(cmd: &mut Command, netns: &str) {
    let path = CString::new(format!("/var/run/netns/{netns}")).expect("netns name has no NUL");
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe system calls open, setns and close; `path` was allocated
    // before the fork.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let entered = libc::setns(fd, libc::CLONE_NEWNET);
            libc::close(fd);
            if entered != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from the process-long spawner thread, tied to the test process with
/// `PR_SET_PDEATHSIG` (see the module docs). The returned [`Child`] can be waited for
/// and killed from any thread.
pub fn spawn_long_lived(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("rswarm-tests-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in incoming {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the rswarm-tests spawner thread");
        Mutex::new(requests)
    });
    die_with_parent(&mut cmd);
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((cmd, reply))
        .map_err(|_| io::Error::other("the rswarm-tests spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the rswarm-tests spawner thread is gone"))?
}
