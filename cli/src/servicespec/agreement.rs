//! Agreement tests: for every rule that used to disagree between the CLI and
//! the control API (`node.ip`, `node.role==manager`, DNS names ending in `-`,
//! image references with registry ports and digests), the CLI's `service
//! create` path and the control API's final check give one answer.

use clap::Parser;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{ReplicatedService, ServiceSpec};

use super::edits::{apply, defaults, SpecEdit};
use super::flags::tests::{no_env, Create};
use super::flags::{read_local_file, LocalInputs};
use super::policy::ModeKind;

/// The CLI's answer for `service create --name NAME [--constraint C] IMAGE`.
fn cli(name: &str, image: &str, constraint: Option<&str>) -> Result<(), String> {
    let mut argv = vec!["create".to_string(), format!("--name={name}")];
    argv.extend(constraint.map(|c| format!("--constraint={c}")));
    argv.push(image.to_string());
    let create = Create::try_parse_from(argv).map_err(|e| e.to_string())?;
    let local = LocalInputs {
        env: &no_env,
        read_file: &read_local_file,
        cwd: "/".into(),
    };
    create
        .flags
        .to_spec_with(image, &[], &local)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The same spec as a raw API call would carry it, and the control API's answer.
fn api(name: &str, image: &str, constraint: Option<&str>) -> Result<(), String> {
    let mut spec: ServiceSpec = defaults(ModeKind::Replicated);
    let mut edits = vec![
        SpecEdit::Name(name.into()),
        SpecEdit::Image(image.into()),
        SpecEdit::Mode(Mode::Replicated(ReplicatedService { replicas: 1 })),
    ];
    edits.extend(constraint.map(|c| SpecEdit::Constraint(c.into())));
    apply(&mut spec, edits);
    rswarm_manager::controlapi::services::validate(&spec).map_err(|e| e.to_string())
}

/// Both sides accept, or both refuse for the same reason.
fn agree(name: &str, image: &str, constraint: Option<&str>, accepted: bool, reason: &str) {
    let (c, a) = (cli(name, image, constraint), api(name, image, constraint));
    let what = format!("{name} {image} {constraint:?}: cli {c:?}, api {a:?}");
    assert_eq!(c.is_ok(), accepted, "{what}");
    assert_eq!(a.is_ok(), accepted, "{what}");
    if !accepted {
        let both = c.err().unwrap_or_default() + &a.err().unwrap_or_default();
        assert_eq!(both.matches(reason).count(), 2, "{what}");
    }
}

#[test]
fn node_ip_is_accepted_as_an_address_or_a_cidr_block() {
    for ok in [
        "node.ip==10.77.0.2",
        "node.ip==10.0.0.0/8",
        "node.ip!=fd00::/8",
    ] {
        agree("web", "busybox", Some(ok), true, "");
    }
    agree(
        "web",
        "busybox",
        Some("node.ip==somewhere"),
        false,
        "invalid node.ip 'somewhere': must be an IP address or a CIDR block",
    );
}

#[test]
fn node_role_manager_is_accepted_in_any_case() {
    for ok in [
        "node.role==manager",
        "Node.Role==Manager",
        "node.role!=worker",
    ] {
        agree("web", "busybox", Some(ok), true, "");
    }
    agree(
        "web",
        "busybox",
        Some("node.role==boss"),
        false,
        "invalid node.role 'boss': must be manager or worker",
    );
}

#[test]
fn dns_names_must_not_end_in_a_dash() {
    agree("web-1", "busybox", None, true, "");
    for bad in ["web-", "-web", "web_", "a.b"] {
        agree(
            bad,
            "busybox",
            None,
            false,
            "name must be valid as a DNS name component",
        );
    }
}

#[test]
fn references_with_registry_ports_and_digests() {
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    for ok in [
        "localhost:5000/a/b:1".to_string(),
        format!("x@{digest}"),
        format!("localhost:5000/a/b:1@{digest}"),
    ] {
        agree("web", &ok, None, true, "");
    }
    agree(
        "web",
        "x@sha256:abc",
        None,
        false,
        "invalid reference format",
    );
    agree(
        "web",
        "localhost:99999/a",
        None,
        false,
        "invalid reference format",
    );
    agree(
        "web",
        "UPPER/case",
        None,
        false,
        "invalid reference format: repository name must be lowercase",
    );
}
