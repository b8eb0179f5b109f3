//! Test topologies for the nftables tests: uniquely named network namespaces
//! (`rsnft<pid>-<n>-<role>`), "switch" namespaces holding a bridge (so no host
//! firewall sees the test traffic), veth cables, and tiny servers that answer
//! with their own name. Everything is removed when the [`Lab`] is dropped,
//! also while a failing test unwinds.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The file of namespace `name`.
pub(crate) fn ns_path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

fn describe(argv: &[&str], out: &Output) -> String {
    format!(
        "`{}` exited with {}\nstdout: {}\nstderr: {}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `argv`, panics with its output if it fails; its stdout.
pub(crate) fn sh(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(out.status.success(), "{}", describe(argv, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a fresh thread inside namespace `ns`.
pub(crate) fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = ns_path(ns);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            // SAFETY: setns on this scoped thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!("setns {path:?}: {}", io::Error::last_os_error());
            }
            f()
        });
        match worker.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A set of namespaces and servers, torn down on drop.
pub(crate) struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    servers: Vec<Server>,
    children: Vec<Child>,
    ports: usize,
}

impl Lab {
    pub(crate) fn new(tag: &str) -> Lab {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        Lab {
            prefix: format!("rsnft{}-{n}-{tag}", std::process::id()),
            namespaces: Vec::new(),
            servers: Vec::new(),
            children: Vec::new(),
            ports: 0,
        }
    }

    /// A new namespace `<prefix>-<role>` with `lo` up; its name.
    pub(crate) fn netns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.prefix);
        if ns_path(&name).exists() {
            let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        }
        sh(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A switch: a namespace with bridge `br0` up.
    pub(crate) fn switch(&mut self, role: &str) -> String {
        let name = self.netns(role);
        sh(&["ip", "-n", &name, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &name, "link", "set", "br0", "up"]);
        name
    }

    /// Cables `host` to `switch`: `ifname` in the host with `cidr`, up.
    pub(crate) fn plug(&mut self, switch: &str, host: &str, ifname: &str, cidr: &str) {
        self.ports += 1;
        let port = format!("p{}", self.ports);
        sh(&[
            "ip", "-n", switch, "link", "add", &port, "type", "veth", "peer", "name", ifname,
            "netns", host,
        ]);
        sh(&[
            "ip", "-n", switch, "link", "set", &port, "master", "br0", "up",
        ]);
        sh(&["ip", "-n", host, "addr", "add", cidr, "dev", ifname]);
        sh(&["ip", "-n", host, "link", "set", ifname, "up"]);
    }

    /// `ip -n NS ARGS...`.
    pub(crate) fn ip(&self, ns: &str, args: &[&str]) -> String {
        let mut argv = vec!["ip", "-n", ns];
        argv.extend_from_slice(args);
        sh(&argv)
    }

    /// Runs `argv` in namespace `ns` (only the network namespace switched).
    pub(crate) fn exec(&self, ns: &str, argv: &[&str]) -> String {
        let net = format!("--net={}", ns_path(ns).display());
        let mut full = vec!["nsenter", net.as_str()];
        full.extend_from_slice(argv);
        sh(&full)
    }

    /// Starts `argv` in namespace `ns` in the background (killed on drop).
    pub(crate) fn spawn(&mut self, ns: &str, argv: &[&str]) {
        let net = format!("--net={}", ns_path(ns).display());
        let child = Command::new("nsenter")
            .arg(net)
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?} in {ns}: {e}"));
        self.children.push(child);
    }

    /// Reads `/proc/sys/<key>` in `ns`.
    pub(crate) fn sysctl(&self, ns: &str, key: &str) -> String {
        in_ns(ns, || std::fs::read_to_string(format!("/proc/sys/{key}")))
            .unwrap_or_else(|e| panic!("read {key} in {ns}: {e}"))
            .trim()
            .to_string()
    }

    /// Writes `/proc/sys/<key>` in `ns`.
    pub(crate) fn set_sysctl(&self, ns: &str, key: &str, value: &str) {
        in_ns(ns, || std::fs::write(format!("/proc/sys/{key}"), value))
            .unwrap_or_else(|e| panic!("write {key} in {ns}: {e}"));
    }

    /// A TCP server on `0.0.0.0:port` in `ns`: to each connection it sends
    /// `"<name> <peer ip>\n"`, then echoes lines until EOF.
    pub(crate) fn tcp_server(&mut self, ns: &str, port: u16, name: &str) {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let path = ns_path(ns);
        let (server_name, stop2) = (name.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let listener = (|| -> io::Result<TcpListener> {
                let file = std::fs::File::open(&path)?;
                // SAFETY: setns on this server thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                let l = TcpListener::bind(("0.0.0.0", port))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })();
            let listener = match listener {
                Ok(l) => {
                    let _ = ready_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while !stop2.load(Ordering::Relaxed) {
                // Wake at once for a connection, every 50 ms to look at `stop`.
                let mut pfd = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
                    continue;
                }
                if let Ok((stream, peer)) = listener.accept() {
                    let name = server_name.clone();
                    std::thread::spawn(move || serve_tcp(stream, peer, &name));
                }
            }
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("tcp server {name} in {ns}: {e}"),
            Err(_) => panic!("tcp server {name} in {ns} died"),
        }
        self.servers.push(Server {
            stop,
            thread: Some(thread),
        });
    }

    /// A UDP server on `0.0.0.0:port` in `ns` answering `"<name> <peer ip>"`.
    pub(crate) fn udp_server(&mut self, ns: &str, port: u16, name: &str) {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let path = ns_path(ns);
        let (server_name, stop2) = (name.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let sock = (|| -> io::Result<UdpSocket> {
                let file = std::fs::File::open(&path)?;
                // SAFETY: setns on this server thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                let s = UdpSocket::bind(("0.0.0.0", port))?;
                s.set_read_timeout(Some(Duration::from_millis(20)))?;
                Ok(s)
            })();
            let sock = match sock {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let answer = format!("{server_name} {}", peer.ip());
                    let _ = sock.send_to(answer.as_bytes(), peer);
                }
            }
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("udp server {name} in {ns}: {e}"),
            Err(_) => panic!("udp server {name} in {ns} died"),
        }
        self.servers.push(Server {
            stop,
            thread: Some(thread),
        });
    }
}

fn serve_tcp(stream: TcpStream, peer: SocketAddr, name: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    if writer
        .write_all(format!("{name} {}\n", peer.ip()).as_bytes())
        .is_err()
    {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while let Ok(n) = reader.read_line(&mut line) {
        if n == 0 || writer.write_all(line.as_bytes()).is_err() {
            return;
        }
        line.clear();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &self.servers {
            s.stop.store(true, Ordering::Relaxed);
        }
        for s in &mut self.servers {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let me = std::process::id().to_string();
        for ns in self.namespaces.iter().rev() {
            // Processes a test started there (iperf3): kill them, never us.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if pid != me {
                        if let Ok(pid) = pid.parse::<i32>() {
                            // SAFETY: plain kill(2) of a process in our test namespace.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                }
            }
            match Command::new("ip").args(["netns", "delete", ns]).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "cleanup: {}",
                    describe(&["ip", "netns", "delete", ns], &out)
                ),
                Err(e) => eprintln!("cleanup: ip netns delete {ns}: {e}"),
            }
        }
    }
}

/// A TCP connection made from inside `ns`, with its greeting line read.
pub(crate) struct Conn {
    pub(crate) greeting: String,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `to` from `ns` (within `timeout`) and reads the greeting.
    pub(crate) fn open(ns: &str, to: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = in_ns(ns, || TcpStream::connect_timeout(&to, timeout))?;
        stream.set_read_timeout(Some(timeout))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut greeting = String::new();
        reader.read_line(&mut greeting)?;
        if greeting.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no greeting"));
        }
        Ok(Conn {
            greeting: greeting.trim().to_string(),
            stream,
            reader,
        })
    }

    /// The backend's name (first word of the greeting).
    pub(crate) fn backend(&self) -> &str {
        self.greeting.split(' ').next().unwrap_or("")
    }

    /// The peer address the backend saw (second word of the greeting).
    pub(crate) fn seen_as(&self) -> &str {
        self.greeting.split(' ').nth(1).unwrap_or("")
    }

    /// How long a read waits before it fails with `WouldBlock`.
    pub(crate) fn set_read_timeout(&self, timeout: Duration) {
        let _ = self.stream.set_read_timeout(Some(timeout));
    }

    /// Reads one line (the echo of a line sent earlier).
    pub(crate) fn read_line(&mut self) -> io::Result<String> {
        let mut back = String::new();
        self.reader.read_line(&mut back)?;
        Ok(back.trim().to_string())
    }

    /// Sends a line and reads the echo.
    pub(crate) fn echo(&mut self, line: &str) -> io::Result<String> {
        self.stream.write_all(format!("{line}\n").as_bytes())?;
        let mut back = String::new();
        self.reader.read_line(&mut back)?;
        Ok(back.trim().to_string())
    }
}

/// One UDP exchange from `ns` to `to` on a fresh socket: the answer.
pub(crate) fn udp_ask(ns: &str, to: SocketAddr, timeout: Duration) -> io::Result<String> {
    let sock = in_ns(ns, || UdpSocket::bind(("0.0.0.0", 0)))?;
    sock.set_read_timeout(Some(timeout))?;
    sock.connect(to)?;
    sock.send(b"hi")?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
