//! A client that sends HTTP requests without pause from inside a network namespace
//! and counts what answered and what did not: the benchmarks' and tests' way to see
//! failed requests while a service changes under it.
//!
//! [`RequestLoop::start`] runs one thread that enters a network namespace (a host's
//! `/var/run/netns/<name>`, or a container's `/proc/<pid>/ns/net`) and then, until
//! stopped, sends `GET / HTTP/1.0` on a new connection each time, one after the
//! other, each with a deadline ([`RequestLoop::start`]'s `timeout`) for the whole
//! exchange. The target is a fixed address (a published port), or a name resolved
//! before every request with a DNS query of our own (an `A` query over UDP to a
//! given server, such as the embedded DNS at `127.0.0.11:53` inside a task's
//! namespace, which the netns's `/etc/resolv.conf` would not name), the request
//! going to one of the answers at random, so a stale address in an answer is hit. A request
//! succeeds when the answer's status is 200. [`RequestLoop::tally`] reads the counts
//! at any time, so a caller takes the difference over a window; each failure is
//! kept with its time and reason.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where the requests go.
#[derive(Clone, Debug)]
pub enum Target {
    /// One address, e.g. a node's published port.
    Addr(SocketAddr),
    /// `name` resolved before each request through the DNS server `server`, then
    /// port `port` of one of its addresses (at random).
    Resolve {
        server: SocketAddr,
        name: String,
        port: u16,
    },
}

impl Target {
    pub fn show(&self) -> String {
        match self {
            Target::Addr(addr) => format!("http://{addr}/"),
            Target::Resolve { server, name, port } => {
                format!("http://{name}:{port}/ (resolved through {server} before each request)")
            }
        }
    }
}

/// One failed request.
#[derive(Clone, Debug)]
pub struct Failure {
    /// When it was sent.
    pub at: Instant,
    /// Where it went (None: the name did not resolve).
    pub to: Option<SocketAddr>,
    pub reason: String,
}

/// What the loop has seen so far.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// The first failures (at most [`KEPT_FAILURES`]).
    pub failures: Vec<Failure>,
    /// Every answer's body (its first line) with how often it came: which tasks
    /// answered.
    pub bodies: BTreeMap<String, u64>,
    /// When the last request was sent.
    pub last_sent: Option<Instant>,
    /// The addresses of the latest DNS answer ([`Target::Resolve`]).
    pub last_resolved: Vec<Ipv4Addr>,
}

/// How many failures a [`Tally`] keeps with their reasons.
pub const KEPT_FAILURES: usize = 10_000;

impl Tally {
    /// Failures sent at or after `from` (and before `to`), from the kept ones.
    pub fn failures_between(&self, from: Instant, to: Instant) -> Vec<&Failure> {
        self.failures
            .iter()
            .filter(|f| f.at >= from && f.at < to)
            .collect()
    }

    /// Reasons of `failures` with their counts, most frequent first.
    pub fn reasons(failures: &[&Failure]) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for f in failures {
            *counts.entry(f.reason.as_str()).or_default() += 1;
        }
        let mut list: Vec<(String, usize)> = counts
            .into_iter()
            .map(|(r, n)| (r.to_string(), n))
            .collect();
        list.sort_by_key(|entry| std::cmp::Reverse(entry.1));
        list
    }
}

/// A running request loop; stopped when dropped.
pub struct RequestLoop {
    target: Target,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    thread: Option<JoinHandle<()>>,
}

impl RequestLoop {
    /// Starts the loop in the network namespace `netns` (a path to a namespace
    /// file); fails if it cannot be entered.
    pub fn start(netns: &Path, target: Target, timeout: Duration) -> anyhow::Result<RequestLoop> {
        let ns = std::fs::File::open(netns)
            .with_context(|| format!("opening network namespace {}", netns.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, tally, target) = (stop.clone(), tally.clone(), target.clone());
            let path: PathBuf = netns.to_path_buf();
            std::thread::Builder::new()
                .name("request-loop".into())
                .spawn(move || {
                    // SAFETY: setns on this thread only; `ns` is open for the call.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        let err = std::io::Error::last_os_error();
                        let _ = entered_tx.send(Err(format!("entering {}: {err}", path.display())));
                        return;
                    }
                    drop(ns);
                    let _ = entered_tx.send(Ok(()));
                    run(&target, timeout, &stop, &tally);
                })
                .context("starting the request loop's thread")?
        };
        match entered_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => bail!("{err}"),
            Err(_) => bail!("the request loop's thread ended before it started"),
        }
        Ok(RequestLoop {
            target,
            stop,
            tally,
            thread: Some(thread),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// (succeeded, failed) so far.
    pub fn counts(&self) -> (u64, u64) {
        self.tally
            .lock()
            .map(|t| (t.ok, t.failed))
            .unwrap_or_default()
    }

    /// Waits (at most `limit`) until `streak` requests in a row have succeeded;
    /// whether they did.
    pub fn wait_steady(&self, streak: u64, limit: Duration) -> bool {
        let started = Instant::now();
        let (mut ok_since, mut last_failed) = self.counts();
        while started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
            let (ok, failed) = self.counts();
            if failed != last_failed {
                last_failed = failed;
                ok_since = ok;
            } else if ok - ok_since >= streak {
                return true;
            }
        }
        false
    }

    /// Stops the loop (after the request under way) and returns the final counts.
    pub fn stop(mut self) -> Tally {
        self.halt();
        self.tally()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RequestLoop {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(target: &Target, timeout: Duration, stop: &AtomicBool, tally: &Mutex<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let deadline = sent + timeout;
        let to_addr = |addr: SocketAddr| get(addr, deadline).map_err(|e| (Some(addr), e));
        let mut resolved = None;
        let result = match target {
            Target::Addr(addr) => to_addr(*addr),
            Target::Resolve { server, name, port } => match resolve(*server, name, deadline) {
                Ok(addrs) if addrs.is_empty() => Err((None, format!("dns: no address for {name}"))),
                Ok(addrs) => {
                    // At random: a server's own order (rotated per query, say)
                    // must not hide an address from the client.
                    let ip = addrs[rand::random::<usize>() % addrs.len()];
                    resolved = Some(addrs);
                    to_addr(SocketAddr::V4(SocketAddrV4::new(ip, *port)))
                }
                Err(err) => Err((None, format!("dns: {err}"))),
            },
        };
        let Ok(mut t) = tally.lock() else { return };
        if let Some(addrs) = resolved {
            t.last_resolved = addrs;
        }
        t.last_sent = Some(sent);
        match result {
            Ok(body) => {
                t.ok += 1;
                *t.bodies.entry(body).or_default() += 1;
            }
            Err((to, reason)) => {
                t.failed += 1;
                if t.failures.len() < KEPT_FAILURES {
                    t.failures.push(Failure {
                        at: sent,
                        to,
                        reason,
                    });
                }
            }
        }
    }
}

/// Time left until `deadline`, an error once it has passed.
fn left(deadline: Instant, what: &str) -> Result<Duration, String> {
    let now = Instant::now();
    if now >= deadline {
        return Err(format!("{what}: timed out"));
    }
    Ok(deadline - now)
}

/// One `GET /` on a new connection: the body's first line when the status is 200.
fn get(addr: SocketAddr, deadline: Instant) -> Result<String, String> {
    let io = |what: &str, err: std::io::Error| -> String {
        match err.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("{what}: timed out")
            }
            _ => format!("{what}: {err}"),
        }
    };
    let mut stream = TcpStream::connect_timeout(&addr, left(deadline, "connect")?)
        .map_err(|e| io("connect", e))?;
    stream
        .set_write_timeout(Some(left(deadline, "send")?))
        .map_err(|e| io("send", e))?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        .map_err(|e| io("send", e))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream
            .set_read_timeout(Some(left(deadline, "answer")?))
            .map_err(|e| io("answer", e))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("answer", e)),
        }
        if answer.len() > 64 * 1024 {
            return Err("answer: longer than 64 KiB".into());
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).unwrap_or("");
    if answer.is_empty() {
        return Err("answer: connection closed with no answer".into());
    }
    if status != "200" {
        return Err(format!("answer: status {status:?}"));
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(body.lines().next().unwrap_or("").trim().to_string())
}

/// The IPv4 addresses of `name` from DNS server `server` (one `A` query over UDP).
pub fn resolve(server: SocketAddr, name: &str, deadline: Instant) -> Result<Vec<Ipv4Addr>, String> {
    let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| format!("socket: {e}"))?;
    socket
        .connect(server)
        .map_err(|e| format!("{server}: {e}"))?;
    let id: u16 = rand::random();
    let query = dns_query(id, name)?;
    socket
        .send(&query)
        .map_err(|e| format!("sending to {server}: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        socket
            .set_read_timeout(Some(left(deadline, "answer")?))
            .map_err(|e| e.to_string())?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer from {server}"))
            }
            Err(e) => return Err(format!("from {server}: {e}")),
        };
        match dns_answer(id, &buf[..n]) {
            Some(Ok(addrs)) => return Ok(addrs),
            Some(Err(rcode)) => return Err(format!("{server} answered rcode {rcode}")),
            None => continue, // not the answer to our query
        }
    }
}

/// A standard query for `name`'s `A` records, recursion desired.
fn dns_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    Ok(q)
}

/// The `A` records of an answer with ID `id`: None when it is not one (wrong ID,
/// malformed), Err(rcode) when the server refused or found nothing.
fn dns_answer(id: u16, msg: &[u8]) -> Option<Result<Vec<Ipv4Addr>, u8>> {
    let u16_at =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?])) };
    if u16_at(0)? != id || msg.get(2)? & 0x80 == 0 {
        return None;
    }
    let rcode = msg.get(3)? & 0x0f;
    if rcode != 0 {
        return Some(Err(rcode));
    }
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    let skip_name = |mut i: usize| -> Option<usize> {
        loop {
            let len = *msg.get(i)?;
            if len & 0xc0 == 0xc0 {
                return Some(i + 2);
            }
            if len == 0 {
                return Some(i + 1);
            }
            i += 1 + len as usize;
        }
    };
    let mut i = 12;
    for _ in 0..questions {
        i = skip_name(i)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..answers {
        i = skip_name(i)?;
        let (rtype, class, len) = (u16_at(i)?, u16_at(i + 2)?, u16_at(i + 8)? as usize);
        let data = msg.get(i + 10..i + 10 + len)?;
        if rtype == 1 && class == 1 && len == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + len;
    }
    Some(Ok(addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_with_two_a_records_gives_both_addresses() {
        let mut msg = dns_query(7, "tasks.web").unwrap();
        msg[2] = 0x81; // response
        msg[3] = 0x80;
        msg[7] = 2; // two answers
        for last in [4u8, 6] {
            msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 1, last]);
        }
        assert_eq!(
            dns_answer(7, &msg),
            Some(Ok(vec![
                Ipv4Addr::new(10, 0, 1, 4),
                Ipv4Addr::new(10, 0, 1, 6)
            ]))
        );
        assert_eq!(dns_answer(8, &msg), None, "another query's answer");
        msg[3] = 0x83; // NXDOMAIN
        assert_eq!(dns_answer(7, &msg), Some(Err(3)));
        assert!(dns_query(1, "a..b").is_err());
    }
}
