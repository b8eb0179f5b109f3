//! `init: true`: a tiny init as the container's PID 1, like Docker's
//! `docker-init` (tini).
//!
//! The init is this very binary (its path when the daemon started; an
//! upgrade that renames a new binary over it gives new containers the new
//! one), bind-mounted read-only at `/.rswarm/init`
//! and run as `/.rswarm/init container-init -- <args…>`; the daemon binary
//! routes that hidden subcommand to [`container_init_main`]. An image does
//! not carry our C library, so a dynamically linked binary is started by
//! the host's dynamic loader, bind-mounted with the libraries it needs under
//! `/.rswarm` (found once with `ld.so --list`):
//! `/.rswarm/ld.so --inhibit-cache --library-path /.rswarm/lib /.rswarm/init container-init -- <args…>`.
//! Nothing of the image is shadowed, so this works in any image, even one
//! without a libc. A statically linked binary is run directly.

use std::ffi::CString;
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execvp, fork, getpid, isatty, setpgid, tcsetpgrp, ForkResult, Pid};

/// Where the init and its loader appear in a container.
pub(crate) const INIT_PATH: &str = "/.rswarm/init";
const LOADER_PATH: &str = "/.rswarm/ld.so";
const LIB_DIR: &str = "/.rswarm/lib";
/// The hidden subcommand.
pub(crate) const SUBCOMMAND: &str = "container-init";

/// How to inject the init: read-only bind mounts (host path, container path)
/// and what goes before the container's args.
#[derive(Debug, Clone)]
pub(crate) struct InitPlan {
    pub mounts: Vec<(PathBuf, String)>,
    pub argv_prefix: Vec<String>,
}

impl InitPlan {
    /// Works out the plan for `binary` (its loader and libraries, if any).
    pub(super) fn for_binary(binary: &Path) -> Result<InitPlan, String> {
        let bin = std::fs::canonicalize(binary)
            .map_err(|e| format!("init binary {}: {e}", binary.display()))?;
        let Some(interp) =
            elf_interpreter(&bin).map_err(|e| format!("reading {}: {e}", bin.display()))?
        else {
            return Ok(InitPlan {
                mounts: vec![(bin, INIT_PATH.to_string())],
                argv_prefix: vec![INIT_PATH.into(), SUBCOMMAND.into(), "--".into()],
            });
        };
        let out = std::process::Command::new(&interp)
            .arg("--list")
            .arg(&bin)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("running {} --list: {e}", interp.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} --list {} failed: {}",
                interp.display(),
                bin.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let loader = std::fs::canonicalize(&interp)
            .map_err(|e| format!("loader {}: {e}", interp.display()))?;
        let mut mounts = vec![
            (bin, INIT_PATH.to_string()),
            (loader, LOADER_PATH.to_string()),
        ];
        for (soname, path) in parse_ld_list(&String::from_utf8_lossy(&out.stdout)) {
            let real = std::fs::canonicalize(&path)
                .map_err(|e| format!("library {}: {e}", path.display()))?;
            mounts.push((real, format!("{LIB_DIR}/{soname}")));
        }
        Ok(InitPlan {
            mounts,
            argv_prefix: vec![
                LOADER_PATH.into(),
                "--inhibit-cache".into(),
                "--library-path".into(),
                LIB_DIR.into(),
                INIT_PATH.into(),
                SUBCOMMAND.into(),
                "--".into(),
            ],
        })
    }
}

/// `soname => /path (0x…)` lines of `ld.so --list`.
fn parse_ld_list(text: &str) -> Vec<(String, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.split(" (").next()?.trim();
            if !path.starts_with('/') || name.contains('/') {
                return None;
            }
            Some((name.to_string(), PathBuf::from(path)))
        })
        .collect()
}

/// The PT_INTERP of a 64-bit little-endian ELF file (None: static, or not
/// an ELF file we understand).
fn elf_interpreter(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut f = std::fs::File::open(path)?;
    let mut head = Vec::new();
    f.by_ref().take(64 * 1024).read_to_end(&mut head)?;
    let u16_at = |o: usize| {
        head.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        head.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a) as usize
        })
    };
    // ELF magic, ELFCLASS64, little endian.
    if head.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Ok(None);
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Ok(None);
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph) != Some(3) {
            continue; // not PT_INTERP
        }
        let (Some(off), Some(size)) = (u64_at(ph + 8), u64_at(ph + 32)) else {
            return Ok(None);
        };
        let mut buf = vec![0u8; size.min(4096)];
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(off as u64))?;
        f.read_exact(&mut buf)?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let s = String::from_utf8_lossy(&buf[..end]).into_owned();
        return Ok(Some(PathBuf::from(s)));
    }
    Ok(None)
}

/// The container init: runs `args` (a leading `--` is skipped) as its child,
/// forwards every signal it gets to that child, reaps every process that
/// ends up as its child, and exits with the child's exit code (128+N when
/// the child was killed by signal N). 127 if the command cannot be found,
/// 126 if it cannot be run.
///
/// Must be called before any other thread is started (it forks).
pub fn container_init_main(args: Vec<String>) -> ! {
    let args: Vec<String> = match args.first().map(String::as_str) {
        Some("--") => args.into_iter().skip(1).collect(),
        _ => args,
    };
    if args.is_empty() {
        eprintln!("container-init: no command given");
        std::process::exit(2);
    }
    let cargs: Vec<CString> = match args.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => {
            eprintln!("container-init: argument with a NUL byte");
            std::process::exit(2);
        }
    };
    let all = SigSet::all();
    if let Err(e) = all.thread_block() {
        eprintln!("container-init: blocking signals: {e}");
        std::process::exit(2);
    }
    // SAFETY: single-threaded here (documented requirement); the child only
    // makes async-signal-safe calls before exec.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            if isatty(0).unwrap_or(false) {
                // SIGTTOU is still blocked, so this cannot stop us.
                let _ = tcsetpgrp(std::io::stdin(), getpid());
            }
            let _ = all.thread_unblock();
            let err = match execvp(&cargs[0], &cargs) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            eprintln!("container-init: exec {}: {err}", args[0]);
            let code = if err == nix::errno::Errno::ENOENT {
                127
            } else {
                126
            };
            // SAFETY: leave the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("container-init: fork: {e}");
            std::process::exit(2);
        }
    };
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => {
                    std::process::exit(128 + s as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ld_list() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ld_list(out);
        assert_eq!(libs.len(), 2);
        assert_eq!(libs[1].0, "libc.so.6");
    }

    #[test]
    fn interpreters() {
        let busybox = Path::new("/usr/bin/busybox");
        if busybox.exists() {
            assert_eq!(elf_interpreter(busybox).expect("read busybox"), None);
        }
        let me = std::env::current_exe().expect("current_exe");
        let interp = elf_interpreter(&me).expect("read self");
        assert!(interp.is_some(), "the test binary is dynamically linked");
    }
}
