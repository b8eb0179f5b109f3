//! `validate()` and `check_supported()`: every rule of a service spec, all
//! problems in one answer.

use super::*;
use crate::types::{
    Annotations, ContainerSpec, HealthConfig, Placement, ReplicatedService, ResourceRequirements,
    TaskSpec,
};

fn spec(name: &str, image: &str, constraints: &[&str]) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: name.into(),
            labels: Default::default(),
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: image.into(),
                ..Default::default()
            }),
            placement: Some(Placement {
                constraints: constraints.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(Mode::Replicated(ReplicatedService { replicas: 1 })),
        ..Default::default()
    }
}

fn problems(s: &ServiceSpec) -> Vec<String> {
    validate(s).err().map(|p| p.0).unwrap_or_default()
}

#[test]
fn a_good_spec_passes() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    for image in [
        "busybox",
        "localhost:5000/a/b:1",
        &format!("x@{digest}"),
        &format!("10.77.0.2:5000/busybox:1@{digest}"),
    ] {
        let s = spec(
            "web",
            image,
            &[
                "node.role==manager",
                "node.ip==10.0.0.0/8",
                "node.labels.z!=b",
            ],
        );
        assert_eq!(validate(&s), Ok(()), "{image}");
    }
    assert_eq!(validate(&spec("", "busybox", &[])), Ok(()), "no name yet");
}

#[test]
fn every_problem_is_reported() {
    let mut s = spec("web-", "UPPER/case", &["node.colour==red"]);
    s.mode = None;
    if let Some(t) = s.task.as_mut() {
        t.resources = Some(ResourceRequirements {
            limits: Some(ResourceLimits {
                memory_bytes: 1024,
                ..Default::default()
            }),
            reservations: None,
        });
    }
    let p = problems(&s);
    assert_eq!(p.len(), 5, "{p:?}");
    assert_eq!(
        p[0],
        "invalid name \"web-\": name must be valid as a DNS name component"
    );
    assert_eq!(p[1], "service spec has no mode");
    assert_eq!(
        p[2],
        "ContainerSpec: \"UPPER/case\" is not a valid repository/tag: invalid reference format: repository name must be lowercase"
    );
    assert_eq!(p[3], "invalid memory value 1024: Must be at least 6MiB");
    assert!(p[4].starts_with("invalid constraint \"node.colour==red\": unknown constraint key"));
    assert_eq!(
        Problems(p[..2].to_vec()).to_string(),
        "invalid name \"web-\": name must be valid as a DNS name component; service spec has no mode"
    );
}

#[test]
fn a_missing_task_or_image_is_named() {
    let mut s = spec("web", "", &[]);
    assert_eq!(
        problems(&s),
        vec!["ContainerSpec: image reference must be provided".to_string()]
    );
    s.task = None;
    assert_eq!(problems(&s), vec!["TaskSpec: missing".to_string()]);
}

#[test]
fn health_checks_are_valid_and_supported() {
    let mut s = spec("web", "busybox", &[]);
    assert_eq!(check_supported(&s), Ok(()));
    if let Some(c) = s.task.as_mut().and_then(|t| t.container.as_mut()) {
        c.healthcheck = Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        });
    }
    assert_eq!(check_supported(&s), Ok(()), "disabling is fine");
    if let Some(c) = s.task.as_mut().and_then(|t| t.container.as_mut()) {
        c.healthcheck = Some(HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            ..Default::default()
        });
    }
    assert_eq!(validate(&s), Ok(()));
    assert_eq!(check_supported(&s), Ok(()), "the agent runs them");
}

#[test]
fn the_log_driver_is_checked() {
    let mut s = spec("web", "busybox", &[]);
    if let Some(t) = s.task.as_mut() {
        t.log_driver = Some(crate::types::Driver {
            name: "journald".into(),
            options: Default::default(),
        });
    }
    assert_eq!(
        problems(&s),
        ["logging driver \"journald\" is not supported: rswarm keeps task logs on the node (json-file, local or none)"]
    );
    if let Some(t) = s.task.as_mut() {
        t.log_driver = Some(crate::types::Driver {
            name: "local".into(),
            options: [("max-file".to_string(), "5".to_string())].into(),
        });
    }
    assert_eq!(validate(&s), Ok(()));
}
