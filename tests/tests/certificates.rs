//! Node certificates over their life, on real multi-host swarms with real
//! mTLS: with a short `--cert-expiry` every node renews its certificate
//! before it expires and the swarm keeps working past the first expiry (and
//! `swarm update --cert-expiry` sets the validity of the next ones); a
//! manager refuses an expired certificate in the TLS handshake; a rotated
//! worker or manager join token lets a new node join while the old token is
//! refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rswarm_tests::lists::nodes;
use rswarm_tests::{wait_for, Cluster, Host};

/// The CLI's own code for a node's sealed `certificates/node.key` (opened
/// with the keys of its data dir), so a test can hand a clear key to openssl.
#[allow(dead_code)]
#[path = "../../cli/src/daemon/keys.rs"]
mod keys;

/// `--cert-expiry` for these swarms: the shortest allowed.
const EXPIRY: &str = "1m";
/// Certificates issued with [`EXPIRY`] start a tenth of it (6 s) early.
const EXPIRY_VALIDITY: i64 = 60 + 6;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A node certificate as read from a file.
#[derive(Clone, Debug)]
struct Held {
    serial: String,
    not_before: i64,
    not_after: i64,
}

impl Held {
    fn read(file: &Path) -> Option<Held> {
        let pem = std::fs::read_to_string(file).ok()?;
        // The node's own certificate is the first of the file.
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        let cert = block.parse_x509().ok()?;
        let validity = cert.validity();
        Some(Held {
            serial: cert.raw_serial_as_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The certificate `host` holds now.
    fn of(host: &Host) -> Held {
        let file = host.data_dir().join("certificates/node.crt");
        Held::read(&file).unwrap_or_else(|| panic!("{} holds no certificate", host.name()))
    }

    fn validity(&self) -> i64 {
        self.not_after - self.not_before
    }

    /// When the manager signed it: NotBefore is backdated by a tenth of the
    /// expiry asked for, so the validity is 11 tenths of that.
    fn issued_at(&self) -> i64 {
        self.not_before + self.validity() / 11
    }
}

/// A node's certificate and its key in clear, copied out of its data dir
/// into `dir` (created): what someone who copied them would present.
struct Copied {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    held: Held,
}

impl Copied {
    fn from(host: &Host, dir: &Path) -> Copied {
        std::fs::create_dir_all(dir).unwrap();
        let src = host.data_dir().join("certificates");
        let key_file = src.join("node.key");
        let sealed = std::fs::read_to_string(&key_file).unwrap();
        let key_pem = keys::open_node_key_file(&key_file, sealed)
            .unwrap_or_else(|e| panic!("opening {}: {e:#}", key_file.display()));
        let (ca, cert, key) = (
            dir.join("ca.crt"),
            dir.join("node.crt"),
            dir.join("node.key"),
        );
        std::fs::copy(src.join("ca.crt"), &ca).unwrap();
        std::fs::copy(src.join("node.crt"), &cert).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let held = Held::read(&cert).expect("a copied certificate");
        // The key must be the one that goes with the certificate copied: a
        // renewal between the two reads would pair a new key with an old one.
        assert_eq!(
            held.serial,
            Held::of(host).serial,
            "{} renewed while its files were copied",
            host.name()
        );
        Copied {
            ca,
            cert,
            key,
            held,
        }
    }

    /// `rswarm` arguments for a call to the manager at `manager` over TCP with
    /// these files.
    fn cli_args<'a>(&'a self, manager: &'a str, call: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "-H",
            manager,
            "--tlscacert",
            self.ca.to_str().unwrap(),
            "--tlscert",
            self.cert.to_str().unwrap(),
            "--tlskey",
            self.key.to_str().unwrap(),
        ];
        args.extend_from_slice(call);
        args
    }

    /// A TLS 1.2 handshake with the manager at `manager` from `on`'s network,
    /// presenting this certificate (TLS 1.2, so that the server's verdict on
    /// the client certificate comes within the handshake).
    fn handshake(&self, on: &Host, manager: &str) -> rswarm_tests::CmdOutput {
        on.exec(&[
            "openssl",
            "s_client",
            "-connect",
            manager,
            "-tls1_2",
            "-CAfile",
            self.ca.to_str().unwrap(),
            "-verify_return_error",
            "-cert",
            self.cert.to_str().unwrap(),
            "-key",
            self.key.to_str().unwrap(),
            "-brief",
        ])
    }
}

fn wait_ready(host: &Host, hostname: &str, manager_status: &[&str]) {
    wait_for(
        Duration::from_secs(60),
        &format!("{hostname} Ready in `node ls`"),
        || {
            nodes(host)
                .iter()
                .any(|(h, s, m)| h == hostname && s == "Ready" && manager_status.contains(&&m[..]))
                .then_some(())
        },
    );
}

/// `rswarm join` on `host` with `token` to the manager `to`.
fn join(host: &Host, token: &str, to: &Host) -> rswarm_tests::CmdOutput {
    host.rswarm(&[
        "join",
        "--token",
        token,
        "--advertise-addr",
        host.addr(),
        &to.swarm_addr(),
    ])
}

fn one_line(err: &str) -> &str {
    let lines: Vec<&str> = err.trim().lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    lines[0]
}

#[test]
fn certificates_are_renewed_before_they_expire_and_the_swarm_keeps_working() {
    let cluster = Cluster::with_registry(3).unwrap();
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));

    // Under a minute is refused at once, and nothing is made.
    let err = h1.fails(&[
        "init",
        "--advertise-addr",
        h1.addr(),
        "--cert-expiry",
        "30s",
    ]);
    assert_eq!(
        one_line(&err),
        "--cert-expiry: certificate expiry 30s is too short: it must be at least 60s"
    );
    assert!(h1.ok(&["info"]).contains("Swarm: inactive"));

    // Two managers (so Raft's own mTLS is renewed under it too) and a worker.
    cluster
        .init_swarm_with(&["--cert-expiry", EXPIRY], 2, 1)
        .unwrap();
    let hosts = [h1, h2, h3];
    let first: Vec<Held> = hosts.iter().map(|h| Held::of(h)).collect();
    for (h, held) in hosts.iter().zip(&first) {
        assert_eq!(held.validity(), EXPIRY_VALIDITY, "{}: {held:?}", h.name());
    }

    // The next certificates follow `swarm update --cert-expiry`.
    let err = h1.fails(&["swarm", "update", "--cert-expiry", "59s"]);
    assert_eq!(
        one_line(&err),
        "--cert-expiry: certificate expiry 59s is too short: it must be at least 60s"
    );
    h1.ok(&["swarm", "update", "--cert-expiry", "70s"]);

    let image = cluster.registry().busybox();
    h1.ok(&[
        "service", "create", "--detach", "--name", "before", "--mode", "global", &image, "sleep",
        "100000",
    ]);
    h1.wait_running_tasks("before", 3);

    // Every node renews on its own, between half and four fifths of the way
    // through its certificate's validity (plus a heartbeat), so before it
    // expires.
    let mut renewed: Vec<Option<Held>> = vec![None; hosts.len()];
    wait_for(
        Duration::from_secs(90),
        "every node to renew its certificate",
        || {
            for (i, h) in hosts.iter().enumerate() {
                let now = Held::of(h);
                if renewed[i].is_none() && now.serial != first[i].serial {
                    renewed[i] = Some(now);
                }
            }
            renewed.iter().all(Option::is_some).then_some(())
        },
    );
    for ((h, old), new) in hosts.iter().zip(&first).zip(&renewed) {
        let new = new.as_ref().expect("renewed");
        let at = new.issued_at();
        assert!(
            at >= old.not_before + old.validity() / 2 - 1 && at < old.not_after,
            "{} renewed at {at}: {old:?} {new:?}",
            h.name()
        );
        assert!(new.not_after > old.not_after, "{new:?} {old:?}");
    }
    // Those issued after the update are valid for 70 s (+7 s backdated).
    for h in hosts {
        wait_for(
            Duration::from_secs(90),
            &format!("{} to hold a certificate of the new validity", h.name()),
            || (Held::of(h).validity() == 77).then_some(()),
        );
    }

    // Past the first certificates' expiry, the swarm works as before: every
    // node is Ready, a write goes through both managers' Raft, and each node
    // (the worker too) gets and starts a new task, the first ones untouched.
    let expired_at = first.iter().map(|h| h.not_after).max().unwrap();
    wait_for(
        Duration::from_secs(90),
        "the first certificates to have expired",
        || (unix_now() > expired_at + 1).then_some(()),
    );
    for h in ["host1", "host2"] {
        wait_ready(h1, h, &["Leader", "Reachable"]);
    }
    wait_ready(h1, "host3", &[""]);
    h2.ok(&[
        "service", "create", "--detach", "--name", "after", "--mode", "global", &image, "sleep",
        "100000",
    ]);
    h1.wait_running_tasks("after", 3);
    let before = h1.ok(&["service", "ps", "before", "--format", "{{.CurrentState}}"]);
    assert_eq!(before.lines().count(), 3, "{before}");
    assert!(before.lines().all(|l| l.starts_with("Running")), "{before}");
    for h in hosts {
        assert!(Held::of(h).not_after > unix_now(), "{}", h.name());
    }
}

#[test]
fn an_expired_certificate_is_refused_by_the_manager() {
    let cluster = Cluster::start(2).unwrap();
    cluster
        .init_swarm_with(&["--cert-expiry", EXPIRY], 1, 1)
        .unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let manager = h1.swarm_addr();
    let tcp = format!("tcp://{manager}");

    // The worker's certificate, copied while it is valid, is accepted.
    let old = Copied::from(h2, &cluster.dir().join("old-h2"));
    let out = old.handshake(h2, &manager);
    assert!(out.success(), "{out}");

    // Once it has expired (the worker has long renewed by then), the manager
    // refuses it in the handshake with the "certificate expired" alert...
    wait_for(
        Duration::from_secs(90),
        "the copied certificate to expire",
        || (unix_now() > old.held.not_after + 1).then_some(()),
    );
    let refused = old.handshake(h2, &manager);
    assert!(!refused.success(), "{refused}");
    assert!(refused.stderr.contains("certificate expired"), "{refused}");
    // ...while the worker's current certificate is accepted the same way.
    let current = Copied::from(h2, &cluster.dir().join("current-h2"));
    assert_ne!(current.held.serial, old.held.serial);
    let out = current.handshake(h2, &manager);
    assert!(out.success(), "{out}");
    wait_ready(h1, "host2", &[""]);

    // The CLI says so in one line before it even tries.
    let err = h2.fails(&old.cli_args(&tcp, &["node", "ls", "-q"]));
    let line = one_line(&err);
    assert!(
        line.contains("will be refused: it expired") && line.contains("ago"),
        "{line}"
    );
    // (A worker's current certificate gets as far as the manager, which
    // refuses it a manager call for its role, not its date.)
    let err = h2.fails(&current.cli_args(&tcp, &["node", "ls", "-q"]));
    assert!(err.contains("worker certificate"), "{err}");
}

/// Rotates `role`'s join token on `manager`; returns (old, new) and checks
/// the other role's token did not change.
fn rotate(manager: &Host, role: &str) -> (String, String) {
    let other = if role == "worker" {
        "manager"
    } else {
        "worker"
    };
    let token = |r: &str| {
        manager
            .ok(&["swarm", "join-token", "-q", r])
            .trim()
            .to_string()
    };
    let (old, other_before) = (token(role), token(other));
    let out = manager.ok(&["swarm", "join-token", "--rotate", role]);
    assert!(
        out.contains(&format!("Successfully rotated {role} join token.")),
        "{out}"
    );
    let new = token(role);
    assert_ne!(new, old);
    assert!(out.contains(&new), "{out}");
    assert_eq!(token(other), other_before, "the {other} token changed");
    (old, new)
}

#[test]
fn a_new_worker_joins_with_the_rotated_worker_token_and_the_old_token_is_refused() {
    let cluster = Cluster::start(3).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (h1, h3) = (cluster.host(1), cluster.host(3));
    let (old, new) = rotate(h1, "worker");

    let err = join(h3, &old, h1);
    assert!(!err.success(), "{err}");
    assert!(
        one_line(&err.stderr).contains("valid join token is necessary"),
        "{err}"
    );
    assert!(h3.ok(&["info"]).contains("Swarm: inactive"));

    let out = join(h3, &new, h1);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("joined a swarm as a worker"), "{out}");
    wait_ready(h1, "host3", &[""]);
    // The worker that joined with the old token is still a member.
    wait_ready(h1, "host2", &[""]);
    assert_eq!(nodes(h1).len(), 3);
}

#[test]
fn a_new_manager_joins_with_the_rotated_manager_token_and_the_old_token_is_refused() {
    let cluster = Cluster::start(2).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let (old, new) = rotate(h1, "manager");

    let err = join(h2, &old, h1);
    assert!(!err.success(), "{err}");
    assert!(
        one_line(&err.stderr).contains("valid join token is necessary"),
        "{err}"
    );
    assert!(h2.ok(&["info"]).contains("Swarm: inactive"));
    assert_eq!(nodes(h1).len(), 1);

    let out = join(h2, &new, h1);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("joined a swarm as a manager"), "{out}");
    wait_ready(h1, "host2", &["Reachable"]);
    // host2 serves manager calls from its own Raft store.
    wait_for(Duration::from_secs(60), "host2 to list both nodes", || {
        (h2.rswarm(&["node", "ls", "-q"]).stdout.lines().count() == 2).then_some(())
    });
}
