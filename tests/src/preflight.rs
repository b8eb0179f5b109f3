//! What the harness needs from the machine, checked loudly before any cluster starts.
//!
//! A missing precondition is a panic that names what is missing and how to get it:
//! a test that cannot build its cluster must fail, never skip itself silently.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Panics unless the process is root and `ip` and `nsenter` are on the `PATH`.
/// Checked once per process.
pub fn require_root_and_tools() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            panic!(
                "rswarm-tests must run as root: a test cluster is made of network \
                 namespaces (`ip netns add`) and daemons that mount filesystems. \
                 Run `bash tests/run-all.sh` as root, or `sudo -E cargo test`."
            );
        }
        for (tool, package) in [("ip", "iproute2"), ("nsenter", "util-linux")] {
            if find_in_path(tool).is_none() {
                panic!(
                    "rswarm-tests needs `{tool}` (Debian package {package}) on the PATH; \
                     `bash tests/install-packages.sh` installs everything the tests need"
                );
            }
        }
    });
}

/// The `rswarm` binary the tests drive.
///
/// `$RSWARM_BIN` if set; otherwise `rswarm` beside the running test binary's own
/// directory (`<target>/<profile>/rswarm` for `<target>/<profile>/deps/<test>`), which
/// is the one `cargo build -p rswarm` made with the same target dir and profile;
/// otherwise `<workspace>/target/debug/rswarm`.
///
/// Panics if the file does not exist: `cargo test -p rswarm-tests` does not build the
/// `rswarm` binary by itself.
pub fn rswarm_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RSWARM_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            panic!(
                "RSWARM_BIN={} does not exist: build it first (cargo build -p rswarm)",
                path.display()
            );
        }
        return path;
    }
    let beside_tests = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("rswarm")));
    let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/rswarm");
    let candidates: Vec<PathBuf> = beside_tests.into_iter().chain([in_workspace]).collect();
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "the rswarm binary is missing (looked at {}): build it first: \
             cargo build -p rswarm (or set RSWARM_BIN=/path/to/rswarm)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}
