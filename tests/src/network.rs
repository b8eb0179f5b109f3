//! The cluster's wiring: namespaces, the switch's bridge, the hosts' cables.
//!
//! All of it is done with `ip` from iproute2, each call reported with its output when
//! it fails. The bridge lives in the switch namespace (see the crate docs for why);
//! each host's `eth0` is one end of a veth pair whose other end, `vh<i>`, is a port of
//! that bridge. Pulling a host's cable is setting its port down.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::command::{self, CmdOutput};

/// The hosts' subnet, `10.77.0.0/24`; host `i` (1-based) is `10.77.0.(10+i)`.
pub const SUBNET_PREFIX_LEN: u8 = 24;

/// The address of host `i` (1-based): host1 is `10.77.0.11`.
pub fn host_addr(i: usize) -> Ipv4Addr {
    assert!(
        (1..=240).contains(&i),
        "host index {i} out of range 1..=240"
    );
    Ipv4Addr::new(10, 77, 0, 10 + i as u8)
}

/// Runs `ip ARGS`, an error with the command's output if it fails.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let argv: Vec<String> = std::iter::once("ip")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let out = command::run(&argv, &[], command::COMMAND_TIMEOUT);
    if !out.success() {
        bail!("wiring the test network failed:\n{out}");
    }
    Ok(())
}

/// Whether `/var/run/netns/<name>` exists.
pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/var/run/netns").join(name).exists()
}

/// Creates network namespace `name` with `lo` up. A namespace of that name is
/// removed first: names carry the creating process's pid, so one that exists already
/// is a leftover of a dead process whose pid we now have.
pub fn add_netns(name: &str) -> anyhow::Result<()> {
    if netns_exists(name) {
        delete_netns(name).with_context(|| format!("removing leftover namespace {name}"))?;
    }
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])
}

/// Kills every process still in namespace `name` (SIGKILL), then deletes it.
pub fn delete_netns(name: &str) -> anyhow::Result<()> {
    let argv: Vec<String> = ["ip", "netns", "pids", name].map(String::from).to_vec();
    let pids = command::run(&argv, &[], command::COMMAND_TIMEOUT);
    let me = std::process::id();
    for pid in pids
        .stdout
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        if pid != me {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    ip(&["netns", "delete", name])
}

/// Creates the switch namespace `switch` with bridge `br0` in it.
pub fn add_switch(switch: &str) -> anyhow::Result<()> {
    add_netns(switch)?;
    ip(&["-n", switch, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", switch, "link", "set", "br0", "up"])
}

/// Cables host namespace `host` to the switch: `eth0` in the host with `addr/24`,
/// `port` in the switch, enslaved to `br0`, both up.
pub fn plug(switch: &str, port: &str, host: &str, addr: Ipv4Addr) -> anyhow::Result<()> {
    ip(&[
        "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host,
    ])?;
    ip(&["-n", switch, "link", "set", port, "master", "br0", "up"])?;
    ip(&[
        "-n",
        host,
        "addr",
        "add",
        &format!("{addr}/{SUBNET_PREFIX_LEN}"),
        "dev",
        "eth0",
    ])?;
    ip(&["-n", host, "link", "set", "eth0", "up"])
}

/// Sets switch port `port` up (cable plugged) or down (cable pulled).
pub fn set_port(switch: &str, port: &str, up: bool) -> anyhow::Result<()> {
    ip(&[
        "-n",
        switch,
        "link",
        "set",
        port,
        if up { "up" } else { "down" },
    ])
}

/// Runs `f` on a fresh thread that has entered network namespace `netns`; sockets it
/// creates belong to that namespace for their whole life, wherever they are used
/// afterwards. The calling thread's namespace does not change.
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{netns}");
    let ns = std::fs::File::open(&path).unwrap_or_else(|err| panic!("cannot open {path}: {err}"));
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            // SAFETY: setns on this thread only; `ns` outlives the call.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!("cannot enter {path}: {}", std::io::Error::last_os_error());
            }
            f()
        });
        match worker.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Listens on `0.0.0.0:port` inside `netns`.
pub fn listen_tcp(netns: &str, port: u16) -> std::io::Result<TcpListener> {
    in_netns(netns, || TcpListener::bind(("0.0.0.0", port)))
}

/// Whether a TCP connection from inside `netns` to `to` is accepted within `timeout`.
pub fn tcp_connects(netns: &str, to: SocketAddr, timeout: Duration) -> bool {
    in_netns(netns, || TcpStream::connect_timeout(&to, timeout).is_ok())
}

/// The output of `ip -n NETNS ARGS` (for looking, not for wiring).
pub fn show(netns: &str, args: &[&str]) -> CmdOutput {
    let argv: Vec<String> = ["ip", "-n", netns]
        .into_iter()
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    command::run(&argv, &[], command::COMMAND_TIMEOUT)
}
