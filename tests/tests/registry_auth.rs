//! A user's story with a private registry and a task's resolver settings,
//! on a one-node swarm:
//!
//! * A second registry (Debian's docker-registry, plain HTTP, listed in the
//!   daemons' `insecure-registries` as a user would) wants basic auth from
//!   an htpasswd file (bcrypt, made here). `rswarm login` with a wrong
//!   password fails in one line; with the right one it succeeds and writes
//!   `$HOME/.rswarm/config.json` 0600 in a 0700 directory. A service of a
//!   private image created without `--with-registry-auth` fails to pull
//!   with a clear task error; with it, it runs. `service inspect` never
//!   shows the credentials. `logout` removes them.
//! * `--host`, `--dns-search` and `--dns-option` end up in the task's
//!   /etc/hosts and /etc/resolv.conf (the embedded DNS server stays the
//!   nameserver, `--dns` servers are where it forwards), and service names
//!   still resolve.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rswarm_tests::{wait_for, Cluster, CmdOutput};

mod private_registry;
use private_registry::{PASSWORD, USER};

#[test]
fn login_with_registry_auth_and_dns_flags() {
    let cluster = Cluster::with_registry(1).expect("a host and a registry");
    cluster.init_swarm(1, 0).expect("a one-node swarm");
    let h1 = cluster.host(1);

    let private = private_registry::start(&cluster);
    let (image, server, home) = (
        private.image.clone(),
        private.server.clone(),
        private.home.clone(),
    );
    // The CLI as the user runs it, with its own HOME (and stdin from printf).
    let cli = |args: &str| -> CmdOutput { private.cli(h1, args) };

    // A wrong password: one line, nothing stored.
    let out = cli(&format!(
        "login -u {USER} --password-stdin {server} <<EOF\nwrong\nEOF"
    ));
    assert!(!out.success(), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert!(
        out.stderr.contains("incorrect username or password"),
        "{out}"
    );
    let config = home.join(".rswarm/config.json");
    assert!(!config.exists());

    // The right one.
    let out = cli(&format!("login -u {USER} -p {PASSWORD} {server}"));
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), "Login Succeeded");
    assert!(
        out.stderr
            .contains("WARNING! Using --password via the CLI is insecure. Use --password-stdin."),
        "{out}"
    );
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&home.join(".rswarm")), 0o700);
    let text = std::fs::read_to_string(&config).expect("config.json");
    assert!(text.contains(&server), "{text}");

    // Without --with-registry-auth no credentials leave the client: the pull is refused.
    let out = cli(&format!(
        "service create --detach --name anon {image} sleep 600"
    ));
    assert!(out.success(), "{out}");
    let error = wait_for(Duration::from_secs(60), "anon's pull error", || {
        let ps = h1.ok(&["service", "ps", "anon", "--no-trunc"]);
        ps.contains("pull access denied").then_some(ps)
    });
    assert!(
        error.contains(&format!("pull access denied for {server}/app")),
        "{error}"
    );

    // With it, the task runs.
    let out = cli(&format!(
        "service create --detach --with-registry-auth --name private {image} sleep 600"
    ));
    assert!(out.success(), "{out}");
    h1.wait_running_tasks("private", 1);

    // Nothing shows the credentials.
    for args in [
        vec!["service", "inspect", "private"],
        vec!["service", "ls"],
        vec!["service", "ps", "private", "--no-trunc"],
    ] {
        let shown = h1.ok(&args);
        assert!(!shown.contains(PASSWORD), "{args:?}: {shown}");
        assert!(
            !shown.contains("registry_auth") && !shown.contains("RegistryAuth"),
            "{args:?}: {shown}"
        );
    }

    // Logout removes them.
    let out = cli(&format!("logout {server}"));
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout.trim(),
        format!("Removing login credentials for {server}")
    );
    let text = std::fs::read_to_string(&config).expect("config.json");
    assert!(!text.contains(&server), "{text}");

    // DNS settings and host entries, on an overlay network with a second
    // service to resolve by name.
    h1.ok(&["network", "create", "--driver", "overlay", "front"]);
    let busybox = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "peer",
        "--network",
        "front",
        &busybox,
        "sleep",
        "600",
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "dnsy",
        "--network",
        "front",
        "--host",
        "db.internal:10.1.2.3",
        "--host",
        "cache=10.1.2.4",
        "--dns",
        "10.77.0.53",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "timeout:3",
        &busybox,
        "sleep",
        "600",
    ]);
    h1.wait_running_tasks("peer", 1);
    h1.wait_running_tasks("dnsy", 1);
    let hosts = h1.ok(&["exec", "dnsy.1", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.1.2.3\tdb.internal"), "{hosts}");
    assert!(hosts.contains("10.1.2.4\tcache"), "{hosts}");
    let resolv = h1.ok(&["exec", "dnsy.1", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0 timeout:3\n"
    );
    // The embedded server still answers service names (fully qualified:
    // busybox's nslookup tries only the search domain for a bare name).
    let answer = h1.ok(&["exec", "dnsy.1", "nslookup", "peer."]);
    assert!(answer.contains("Address"), "{answer}");
    // A bad value is refused before anything is sent, in one line.
    let err = h1.fails(&[
        "service", "create", "--detach", "--name", "bad", "--host", "db", &busybox,
    ]);
    assert_eq!(
        err.trim(),
        "invalid argument \"db\" for \"--host\" flag: bad format for add-host: \"db\": HOST:IP expected"
    );
}
