//! Bad input, end to end (issue 9, points 8 and 9): one table of CLI cases a
//! careless or hostile user types, each run with the real binary against a
//! real cluster. Every row must exit non-zero with its message (Docker's
//! words where Docker has them), must not have created anything, and no
//! row's output may show Rust internals (`::` paths, `Error(`, `Some(`,
//! struct debug `{ `).
//!
//! The cluster: host1 is a one-node swarm with a running busybox service
//! (for `exec`); host2 is a swarm of its own, so its certificates come from
//! another CA (for the TLS rows).

use std::time::Duration;

use rswarm_tests::{wait_for, Cluster, Host};

/// One case: who runs it, the arguments, and a piece of the message.
struct Row {
    what: &'static str,
    args: Vec<String>,
    /// Run from host2 instead of host1.
    from_host2: bool,
    message: String,
    /// Text the output must not contain (beyond the Rust-internals check).
    never: Option<&'static str>,
}

fn row(what: &'static str, args: &[&str], message: &str) -> Row {
    Row {
        what,
        args: args.iter().map(|a| a.to_string()).collect(),
        from_host2: false,
        message: message.to_string(),
        never: None,
    }
}

/// Rust's debug shapes and paths, which no message may show.
fn rust_internals(text: &str) -> Option<&'static str> {
    let path = text.split(|c: char| c.is_whitespace()).any(|w| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
        w.split("::").count() > 1
            && w.split("::")
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    });
    if path {
        return Some("a `::` path");
    }
    ["Error(", "Some(", "{ ", "None)", "Err("]
        .into_iter()
        .find(|pattern| text.contains(pattern))
}

fn names(h: &Host, what: &str) -> String {
    h.ok(&[what, "ls", "--format", "{{.Name}}"])
}

#[test]
fn bad_input_gets_dockers_answer_and_changes_nothing() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    h2.ok(&["init", "--advertise-addr", h2.addr()]);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service", "create", "--name", "top", &image, "sleep", "100000",
    ]);
    h1.wait_running_tasks("top", 1);

    let services_before = names(h1, "service");
    let networks_before = names(h1, "network");
    let manager = format!("tcp://{}", h1.swarm_addr());
    let certs = |h: &Host, file: &str| {
        h.data_dir()
            .join("certificates")
            .join(file)
            .display()
            .to_string()
    };
    let tls = |ca: String, cert: String, key: String| {
        vec![
            "-H".to_string(),
            manager.clone(),
            "--tlscacert".into(),
            ca,
            "--tlscert".into(),
            cert,
            "--tlskey".into(),
            key,
        ]
    };
    let own_tls = tls(
        certs(h1, "ca.crt"),
        certs(h1, "node.crt"),
        certs(h1, "node.key"),
    );
    let with = |prefix: &[String], args: &[&str]| {
        let mut v = prefix.to_vec();
        v.extend(args.iter().map(|a| a.to_string()));
        v
    };

    let rows = vec![
        row(
            "upper-case image",
            &["service", "create", "--name", "upper", "UPPER/case"],
            "invalid reference format: repository name must be lowercase",
        ),
        row(
            "unknown network",
            &[
                "service", "create", "--name", "lost", "--network", "nosuchnet", &image,
            ],
            "network nosuchnet not found",
        ),
        row(
            "network over rswarm_gwbridge",
            &["network", "create", "--subnet", "172.18.5.0/24", "gw"],
            "invalid subnet 172.18.5.0/24: it overlaps 172.18.0.0/16, the subnet of the rswarm_gwbridge gateway bridge on every node",
        ),
        row(
            "network over a host's subnet",
            &["network", "create", "--subnet", "10.77.0.0/24", "hostnet"],
            &format!(
                "invalid subnet 10.77.0.0/24: it overlaps the network of node host1, whose address is {}",
                h1.addr()
            ),
        ),
        row(
            "--opt encrypted",
            &["network", "create", "--opt", "encrypted", "secret"],
            "encrypted overlay networks are not supported yet (their traffic would cross the wire in clear)",
        ),
        row(
            "--opt encrypted=true",
            &["network", "create", "--opt", "encrypted=true", "secret2"],
            "encrypted overlay networks are not supported yet",
        ),
        row(
            "-H ''",
            &["-H", "", "node", "ls"],
            "invalid host '': expected unix:///path or tcp://host:port",
        ),
        row(
            "template field that does not exist",
            &["node", "ls", "--format", "{{.Nope}}"],
            "template parsing error: template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type node",
        ),
        row(
            "missing argument",
            &["service", "scale"],
            "the following required arguments were not provided: <",
        ),
        row(
            "missing argument (network create)",
            &["network", "create"],
            "the following required arguments were not provided: <NAME>",
        ),
        row(
            "exec of a missing binary",
            &["exec", "top.1", "nosuch"],
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH",
        ),
        Row {
            never: Some("root:x:0:0"),
            ..row(
                "image load of a text file",
                &["image", "load", "-i", "/etc/passwd"],
                "invalid archive /etc/passwd: not a docker-save or OCI archive",
            )
        },
        Row {
            args: with(&own_tls, &["info"]),
            ..row(
                "info over tcp://",
                &[],
                "this command is not served on a manager's tcp:// port; run it on the node itself",
            )
        },
        Row {
            args: with(&own_tls, &["image", "ls"]),
            ..row(
                "image ls over tcp://",
                &[],
                "this command is not served on a manager's tcp:// port",
            )
        },
        // host2's CA did not sign host1's certificate.
        Row {
            args: with(
                &tls(
                    certs(h2, "ca.crt"),
                    certs(h2, "node.crt"),
                    certs(h2, "node.key"),
                ),
                &["node", "ls"],
            ),
            from_host2: true,
            never: Some("UnknownIssuer"),
            ..row(
                "the manager's certificate from another swarm",
                &[],
                "the manager's certificate is not signed by this swarm's CA",
            )
        },
        // host1 refuses host2's certificate (another swarm's CA).
        Row {
            args: with(
                &tls(
                    certs(h1, "ca.crt"),
                    certs(h2, "node.crt"),
                    certs(h2, "node.key"),
                ),
                &["node", "ls"],
            ),
            from_host2: true,
            ..row(
                "a client certificate from another swarm",
                &[],
                &format!(
                    "Cannot connect to the rswarm manager at {manager}: the client certificate {} will be refused: it is not signed by this swarm's CA",
                    certs(h2, "node.crt")
                ),
            )
        },
    ];
    let mut failures = Vec::new();
    for r in &rows {
        let h = if r.from_host2 { h2 } else { h1 };
        let args: Vec<&str> = r.args.iter().map(String::as_str).collect();
        let out = h.rswarm(&args);
        let text = format!("{}{}", out.stdout, out.stderr);
        if out.success() || out.timed_out {
            failures.push(format!("{}: did not fail\n{out}", r.what));
            continue;
        }
        if !out.stderr.contains(&r.message) {
            failures.push(format!("{}: expected {:?}\n{out}", r.what, r.message));
        }
        if let Some(bad) = rust_internals(&text) {
            failures.push(format!("{}: shows Rust internals ({bad})\n{out}", r.what));
        }
        if let Some(never) = r.never {
            if text.contains(never) {
                failures.push(format!("{}: shows {never:?}\n{out}", r.what));
            }
        }
        if out.stderr.trim().lines().count() != 1 {
            failures.push(format!("{}: not one line\n{out}", r.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // Nothing was created by any row.
    assert_eq!(names(h1, "service"), services_before);
    assert_eq!(names(h1, "network"), networks_before);

    // A task whose command does not exist says "runc create failed" once.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "nocmd",
        &image,
        "nosuchcmd",
    ]);
    let error = wait_for(Duration::from_secs(90), "nocmd's task error", || {
        let e = h1.ok(&[
            "service",
            "ps",
            "nocmd",
            "--no-trunc",
            "--format",
            "{{.Error}}",
        ]);
        e.lines()
            .find(|l| l.contains("executable file not found"))
            .map(str::to_string)
    });
    assert!(!error.contains("failed: runc create failed"), "{error}");
    assert!(rust_internals(&error).is_none(), "{error}");
}

#[test]
fn the_rust_internals_check_catches_what_it_should() {
    for bad in [
        "Error response from daemon: rswarm_raft::store::layout::DbError: x",
        "raft: StorageError(IO { source: x })",
        "value Some(3)",
    ] {
        assert!(rust_internals(bad).is_some(), "{bad}");
    }
    for good in [
        "invalid host '': expected unix:///path or tcp://host:port",
        "template parsing error: template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type node",
        "listening on [::]:2377",
    ] {
        assert_eq!(rust_internals(good), None, "{good}");
    }
}
