//! Roles are checked against the cluster, not only the certificate: a demoted
//! manager's old manager certificate is refused for manager calls at once, the
//! node then gets a worker certificate, and a removed node's certificate is
//! refused at once. Real daemons, real mTLS over the hosts' network.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rswarm_proto::identity::cert;
use rswarm_proto::types::NodeRole;
use rswarm_tests::lists::nodes;
use rswarm_tests::{wait_for, Cluster, Host};

/// Copies of a node's CA, certificate and key taken at one moment.
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    /// Copy `host`'s certificate files into `dest/certificates` (created), with
    /// the data dir's `keys/` beside them: the node key is sealed at rest, and
    /// the CLI opens it with the keys of the data dir it lies in (as someone
    /// who copied a manager's files would have to).
    fn copy_from(host: &Host, dest: &Path) -> TlsFiles {
        let keys = dest.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for entry in std::fs::read_dir(host.data_dir().join("keys")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), keys.join(entry.file_name())).unwrap();
        }
        let dest = dest.join("certificates");
        std::fs::create_dir_all(&dest).unwrap();
        let src = host.data_dir().join("certificates");
        let copy = |name: &str| {
            let to = dest.join(name);
            std::fs::copy(src.join(name), &to).unwrap();
            to
        };
        TlsFiles {
            ca: copy("ca.crt"),
            cert: copy("node.crt"),
            key: copy("node.key"),
        }
    }

    /// The role the certificate grants.
    fn role(&self) -> NodeRole {
        role_of(&self.cert)
    }

    /// Run the CLI on `on` against the manager at `manager` (host:port) over TCP
    /// with these files.
    fn call(&self, on: &Host, manager: &str, args: &[&str]) -> rswarm_tests::CmdOutput {
        let host = format!("tcp://{manager}");
        let mut all = vec![
            "-H",
            &host,
            "--tlscacert",
            self.ca.to_str().unwrap(),
            "--tlscert",
            self.cert.to_str().unwrap(),
            "--tlskey",
            self.key.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        on.rswarm(&all)
    }
}

fn role_of(cert_file: &Path) -> NodeRole {
    let pem = std::fs::read_to_string(cert_file).unwrap();
    cert::parse_cert_pem(&pem).unwrap().role
}

fn wait_managers(host: &Host, want: usize) {
    wait_for(
        Duration::from_secs(60),
        &format!("{want} reachable managers"),
        || {
            (nodes(host)
                .iter()
                .filter(|r| r.1 == "Ready" && (r.2 == "Leader" || r.2 == "Reachable"))
                .count()
                == want)
                .then_some(())
        },
    );
}

#[test]
fn a_demoted_managers_old_certificate_is_refused_and_it_gets_a_worker_certificate() {
    let cluster = Cluster::start(3).unwrap();
    cluster.init_swarm(3, 0).unwrap();
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    wait_managers(h1, 3);
    let manager = h1.swarm_addr();

    let old = TlsFiles::copy_from(h3, &cluster.dir().join("old-h3-tls"));
    assert_eq!(old.role(), NodeRole::Manager);
    // Before the demotion the copied certificate is a manager's: it may call Control.
    let before = old.call(h2, &manager, &["service", "ls", "-q"]);
    assert!(before.success(), "{}", before.stderr);

    h1.ok(&["node", "demote", "host3"]);
    // At once: the demotion is applied on host1 when the command returns.
    let refused = old.call(
        h2,
        &manager,
        &[
            "service", "create", "--name", "evil", "busybox", "sleep", "1000",
        ],
    );
    assert!(!refused.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.to_lowercase().contains("permission denied"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("no longer a manager"),
        "{}",
        refused.stderr
    );
    assert!(
        !h1.ok(&["service", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|l| l == "evil"),
        "the refused create left a service"
    );
    // The other managers refuse it too once they applied the demotion.
    wait_for(
        Duration::from_secs(30),
        "host2 to refuse host3's old certificate",
        || {
            let out = old.call(h1, &h2.swarm_addr(), &["service", "ls", "-q"]);
            (!out.success() && out.stderr.contains("no longer a manager")).then_some(())
        },
    );

    // The node renews its certificate as a worker and stops being a manager.
    let h3_cert = h3.data_dir().join("certificates/node.crt");
    wait_for(
        Duration::from_secs(60),
        "host3 to hold a worker certificate",
        || (role_of(&h3_cert) == NodeRole::Worker).then_some(()),
    );
    wait_for(
        Duration::from_secs(60),
        "host3's daemon to drop its manager",
        || {
            h3.rswarm(&["node", "ls"])
                .stderr
                .contains("not a swarm manager")
                .then_some(())
        },
    );
    wait_for(Duration::from_secs(60), "host3 a Ready worker", || {
        nodes(h1)
            .iter()
            .any(|r| r.0 == "host3" && r.1 == "Ready" && r.2.is_empty())
            .then_some(())
    });
    wait_managers(h1, 2);
    // The new worker certificate is refused manager calls too.
    let new = TlsFiles::copy_from(h3, &cluster.dir().join("new-h3-tls"));
    assert_eq!(new.role(), NodeRole::Worker);
    let err = new.call(h2, &manager, &["node", "ls"]);
    assert!(err.stderr.contains("worker certificate"), "{}", err.stderr);
    // The cluster still works with its two managers.
    h1.ok(&["node", "update", "--label-add", "after=demote", "host3"]);

    // A removed node's certificates are refused at once, with the reason.
    h1.ok(&["node", "rm", "--force", "host3"]);
    for files in [&old, &new] {
        let out = files.call(h2, &manager, &["service", "ls"]);
        assert!(!out.success());
        assert!(
            out.stderr.contains("was removed from the swarm"),
            "{}",
            out.stderr
        );
    }
}

/// Whether `openssl verify` accepts the first certificate of `cert_file`
/// against the root `ca_file` alone (no intermediates).
fn verifies(on: &Host, ca_file: &Path, cert_file: &Path, scratch: &Path) -> bool {
    // openssl reads the first certificate of the file: the node's own.
    let pem = std::fs::read_to_string(cert_file).unwrap();
    let end = "-----END CERTIFICATE-----";
    let leaf = &pem[..pem.find(end).unwrap() + end.len()];
    std::fs::write(scratch, format!("{leaf}\n")).unwrap();
    on.exec(&[
        "openssl",
        "verify",
        "-CAfile",
        ca_file.to_str().unwrap(),
        scratch.to_str().unwrap(),
    ])
    .success()
}

#[test]
fn swarm_ca_rotate_gives_every_node_a_certificate_from_a_new_root() {
    let cluster = Cluster::with_registry(4).unwrap();
    cluster.init_swarm(2, 1).unwrap();
    let (h1, h2, h3, h4) = (
        cluster.host(1),
        cluster.host(2),
        cluster.host(3),
        cluster.host(4),
    );
    wait_managers(h1, 2);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        &image,
        "sleep",
        "100000",
    ]);
    h1.wait_running_tasks("web", 3);

    // `swarm ca` prints the current root, the one every node trusts.
    let old_root = h1.ok(&["swarm", "ca"]);
    assert!(
        old_root.starts_with("-----BEGIN CERTIFICATE-----"),
        "{old_root}"
    );
    let dir = cluster.dir();
    let old_root_file = dir.join("old-root.pem");
    std::fs::write(&old_root_file, &old_root).unwrap();
    for h in [h1, h2, h3] {
        let held = std::fs::read_to_string(h.data_dir().join("certificates/ca.crt")).unwrap();
        assert_eq!(held.trim(), old_root.trim(), "{}", h.name());
    }
    let old_token = h1
        .ok(&["swarm", "join-token", "-q", "worker"])
        .trim()
        .to_string();
    let old_h2 = TlsFiles::copy_from(h2, &dir.join("old-h2-tls"));

    let err = h1.fails(&["swarm", "ca", "--detach"]);
    assert!(err.contains("--rotate"), "{err}");

    let out = h1.rswarm_timeout(&["swarm", "ca", "--rotate"], Duration::from_secs(180));
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("rotated TLS certificates:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("3/3 nodes"), "{}", out.stdout);
    let begin = out.stdout.find("-----BEGIN CERTIFICATE-----").unwrap();
    let new_root = out.stdout[begin..].to_string();
    assert_ne!(new_root.trim(), old_root.trim());
    assert_eq!(h2.ok(&["swarm", "ca"]).trim(), new_root.trim());
    let new_root_file = dir.join("new-root.pem");
    std::fs::write(&new_root_file, &new_root).unwrap();

    // Every node ends up trusting only the new root, with a certificate it signed.
    let scratch = dir.join("leaf.pem");
    for h in [h1, h2, h3] {
        let certs = h.data_dir().join("certificates");
        wait_for(
            Duration::from_secs(60),
            &format!("{} to hold the new root", h.name()),
            || {
                let held = std::fs::read_to_string(certs.join("ca.crt")).ok()?;
                (held.trim() == new_root.trim()).then_some(())
            },
        );
        assert!(
            verifies(h1, &new_root_file, &certs.join("node.crt"), &scratch),
            "{}'s certificate is signed by the new root",
            h.name()
        );
        assert!(
            !verifies(h1, &old_root_file, &certs.join("node.crt"), &scratch),
            "{}'s certificate is not signed by the old root",
            h.name()
        );
    }
    // The old manager certificate was signed by the old root only.
    assert!(verifies(h1, &old_root_file, &old_h2.cert, &scratch));
    assert!(!verifies(h1, &new_root_file, &old_h2.cert, &scratch));

    // The cluster keeps working: every node Ready, the service still runs, a
    // new one starts.
    wait_for(Duration::from_secs(60), "3 Ready nodes", || {
        let rows = nodes(h1);
        (rows.len() == 3 && rows.iter().all(|r| r.1 == "Ready")).then_some(())
    });
    wait_managers(h2, 2);
    h1.wait_running_tasks("web", 3);
    h2.ok(&[
        "service",
        "create",
        "--name",
        "after",
        "--replicas",
        "2",
        &image,
        "sleep",
        "100000",
    ]);
    h2.wait_running_tasks("after", 2);

    // The join tokens changed with the root: the old one is refused, the new one works.
    let new_token = h1
        .ok(&["swarm", "join-token", "-q", "worker"])
        .trim()
        .to_string();
    assert_ne!(new_token, old_token);
    let err = h4.fails(&["join", "--token", &old_token, &h1.swarm_addr()]);
    assert!(err.contains("CA does not match"), "{err}");
    h4.ok(&[
        "join",
        "--token",
        &new_token,
        "--advertise-addr",
        h4.addr(),
        &h1.swarm_addr(),
    ]);
    wait_for(Duration::from_secs(60), "host4 Ready", || {
        nodes(h1)
            .iter()
            .any(|r| r.0 == "host4" && r.1 == "Ready")
            .then_some(())
    });
    let h4_cert = h4.data_dir().join("certificates/node.crt");
    assert!(verifies(h1, &new_root_file, &h4_cert, &scratch));

    // A certificate signed only by the old root is refused (the client trusts
    // the new root, so only the server's refusal of the certificate is left)...
    let old_cert_new_ca = TlsFiles {
        ca: new_root_file.clone(),
        cert: old_h2.cert.clone(),
        key: old_h2.key.clone(),
    };
    let refused = old_cert_new_ca.call(h4, &h1.swarm_addr(), &["node", "ls", "-q"]);
    assert!(!refused.success(), "{}", refused.stdout);
    // ...while host2's current certificate works the same way.
    let current_h2 = TlsFiles::copy_from(h2, &dir.join("new-h2-tls"));
    let ok = current_h2.call(h4, &h1.swarm_addr(), &["node", "ls", "-q"]);
    assert!(ok.success(), "{}", ok.stderr);
    assert_eq!(ok.stdout.lines().count(), 4);
}
