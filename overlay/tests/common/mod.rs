//! Test harness for the overlay data path: "host" network namespaces joined
//! by a veth, an [`Overlay`] per host run on a thread switched into that
//! host's namespace (with its own current-thread tokio runtime, as the daemon
//! runs under `nsenter --net`), state directories whose namespace mounts are
//! undone on drop, and small probes (`ip` output, TCP servers and clients
//! inside task namespaces).
//!
//! Everything is created per test with unique names and removed on drop, also
//! when the test panics. Tests need root, `ip` and `nsenter`: without them
//! they fail, loudly.

#![allow(dead_code)]

pub mod capture;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rswarm_overlay::{NetworkConfig, Overlay};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique short tag for this test's objects.
pub fn unique(tag: &str) -> String {
    format!(
        "rsov{}{}{}",
        std::process::id(),
        tag,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Run a command, panic with its stderr if it fails, return stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (needed by the overlay tests): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command inside the network namespace at `path` (nsenter: network only).
pub fn in_ns(path: &Path, cmd: &str, args: &[&str]) -> String {
    let net = format!("--net={}", path.display());
    let mut all = vec![net.as_str(), cmd];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

/// Link names in the namespace at `path`.
pub fn links(path: &Path) -> Vec<String> {
    let out = in_ns(path, "ip", &["-o", "link", "show"]);
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    names.sort();
    names
}

/// Lines of /proc/self/mountinfo that mention `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let d = dir.to_string_lossy().to_string();
    info.lines()
        .filter(|l| l.contains(&d))
        .map(str::to_string)
        .collect()
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: &str) -> NetNs {
        run("ip", &["netns", "add", name]);
        let ns = NetNs {
            name: name.to_string(),
        };
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.name))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A state directory; on drop every namespace mount in it is undone and the
/// directory removed.
pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    pub fn new(tag: &str) -> StateDir {
        let path = std::env::temp_dir().join(tag);
        std::fs::create_dir_all(&path).expect("create state dir");
        StateDir { path }
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let p = e.path();
                for _ in 0..8 {
                    if nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

/// A thread living in a host namespace with its own tokio runtime: the
/// stand-in for a daemon started with `nsenter --net=<host>`.
pub struct Host {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    pub ns_path: PathBuf,
}

impl Host {
    pub fn start(ns: &NetNs) -> Host {
        let ns_path = ns.path();
        let file = std::fs::File::open(&ns_path).expect("open host netns");
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::spawn(move || {
            if let Err(e) = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET) {
                let _ = ready_tx.send(Err(format!("setns: {e}")));
                return;
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("runtime: {e}")));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            while let Ok(job) = rx.recv() {
                job(&rt);
            }
        });
        ready_rx
            .recv()
            .expect("host thread died")
            .expect("host thread setup");
        Host {
            tx: Some(tx),
            thread: Some(thread),
            ns_path,
        }
    }

    /// Run a future on the host's thread and runtime, and wait for it.
    pub fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (rtx, rrx) = mpsc::channel();
        let job: Job = Box::new(move |rt| {
            let _ = rtx.send(rt.block_on(fut));
        });
        self.tx
            .as_ref()
            .expect("host running")
            .send(job)
            .expect("host thread gone");
        rrx.recv().expect("host job panicked")
    }

    /// Start an Overlay on this host.
    pub fn overlay(&self, state: &Path, ip: Ipv4Addr) -> Arc<Overlay> {
        let state = state.to_path_buf();
        Arc::new(
            self.run(async move { Overlay::new(&state, ip).await })
                .expect("Overlay::new"),
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two hosts joined by a veth `ul0`: 10.99.0.1/24 and 10.99.0.2/24.
pub struct TwoHosts {
    // Field order is drop order: hosts stop, then mounts go, then namespaces.
    pub host_a: Host,
    pub host_b: Host,
    pub ov_a: Arc<Overlay>,
    pub ov_b: Arc<Overlay>,
    pub state_a: StateDir,
    pub state_b: StateDir,
    pub ns_a: NetNs,
    pub ns_b: NetNs,
}

pub const IP_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const IP_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

impl TwoHosts {
    pub fn new(tag: &str) -> TwoHosts {
        let base = unique(tag);
        let ns_a = NetNs::new(&format!("{base}a"));
        let ns_b = NetNs::new(&format!("{base}b"));
        run(
            "ip",
            &[
                "-n", &ns_a.name, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0",
                "netns", &ns_b.name,
            ],
        );
        for (ns, ip) in [(&ns_a, "10.99.0.1/24"), (&ns_b, "10.99.0.2/24")] {
            run("ip", &["-n", &ns.name, "addr", "add", ip, "dev", "ul0"]);
            run("ip", &["-n", &ns.name, "link", "set", "ul0", "up"]);
        }
        let state_a = StateDir::new(&format!("{base}-state-a"));
        let state_b = StateDir::new(&format!("{base}-state-b"));
        let host_a = Host::start(&ns_a);
        let host_b = Host::start(&ns_b);
        let ov_a = host_a.overlay(&state_a.path, IP_A);
        let ov_b = host_b.overlay(&state_b.path, IP_B);
        TwoHosts {
            host_a,
            host_b,
            ov_a,
            ov_b,
            state_a,
            state_b,
            ns_a,
            ns_b,
        }
    }
}

/// A network config for tests.
pub fn net(id: &str, vni: u32, subnet: &str, gateway: &str, internal: bool) -> NetworkConfig {
    NetworkConfig {
        id: id.to_string(),
        vni,
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        internal,
        encrypted_local_ip: None,
    }
}

/// Ensure a network on a host.
pub fn ensure(host: &Host, ov: &Arc<Overlay>, n: &NetworkConfig) {
    let (ov, n) = (ov.clone(), n.clone());
    host.run(async move { ov.ensure_network(&n).await })
        .unwrap_or_else(|e| panic!("ensure_network: {e}"));
}

/// Create a task namespace and attach it to one network.
pub fn task(
    host: &Host,
    ov: &Arc<Overlay>,
    task_id: &str,
    network: &str,
    ip_cidr: &str,
    idx: usize,
) -> PathBuf {
    let (ov, t, n, ip) = (
        ov.clone(),
        task_id.to_string(),
        network.to_string(),
        ip_cidr.to_string(),
    );
    host.run(async move {
        let path = ov.create_task_netns(&t).await?;
        ov.attach(&t, &n, &ip, idx).await?;
        Ok::<_, rswarm_overlay::OverlayError>(path)
    })
    .unwrap_or_else(|e| panic!("create/attach task {task_id}: {e}"))
}

/// Run `f` on a fresh thread switched into the network namespace at `path`
/// (a task's, a sandbox's or a host's).
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path:?}: {e}"));
            f()
        });
        match worker.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// A TCP server inside a task namespace that answers every connection with a
/// greeting (or, for [`Server::peer_echo`], with the client address it
/// sees); stopped on drop.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(ov: &Overlay, task_id: &str, addr: SocketAddr, greeting: &'static str) -> Server {
        let listener = ov
            .in_task_netns(task_id, || TcpListener::bind(addr))
            .expect("enter task netns")
            .unwrap_or_else(|e| panic!("bind {addr} in task {task_id}: {e}"));
        Server::serve(listener, Some(greeting))
    }

    /// A server in the namespace at `path` that answers with the client's
    /// address as it sees it (to tell masquerading apart).
    pub fn peer_echo(path: &Path, addr: SocketAddr) -> Server {
        let listener = in_netns(path, || TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("bind {addr} in {path:?}: {e}"));
        Server::serve(listener, None)
    }

    fn serve(listener: TcpListener, greeting: Option<&'static str>) -> Server {
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.set_nonblocking(false);
                        let answer = match greeting {
                            Some(g) => g.to_string(),
                            None => peer.ip().to_string(),
                        };
                        let _ = s.write_all(answer.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from inside a task namespace and read the greeting.
pub fn fetch(
    ov: &Overlay,
    task_id: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<String> {
    ov.in_task_netns(task_id, || {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })
    .expect("enter task netns")
}

/// Connect from inside the network namespace at `path` and read the answer.
pub fn fetch_in(path: &Path, addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    in_netns(path, || {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })
}

/// Attach a task to the gateway bridge; its address there.
pub fn gateway(host: &Host, ov: &Arc<Overlay>, task_id: &str, idx: usize) -> Ipv4Addr {
    let (ov, t) = (ov.clone(), task_id.to_string());
    host.run(async move { ov.attach_gateway(&t, idx).await })
        .unwrap_or_else(|e| panic!("attach_gateway {task_id}: {e}"))
}

/// Create a task namespace with no network attached.
pub fn bare_task(host: &Host, ov: &Arc<Overlay>, task_id: &str) -> PathBuf {
    let (ov, t) = (ov.clone(), task_id.to_string());
    host.run(async move { ov.create_task_netns(&t).await })
        .unwrap_or_else(|e| panic!("create task {task_id}: {e}"))
}

/// The gateway veths (`rswg…`) in the namespace at `path`.
pub fn gateway_veths(path: &Path) -> Vec<String> {
    links(path)
        .into_iter()
        .filter(|n| n.starts_with("rswg"))
        .collect()
}
