//! Docker's `--resolve-image` rules, service by service, without a cluster.

use std::collections::HashMap;

use rswarm_proto::types::{Annotations, ContainerSpec, ServiceSpec, TaskSpec};

use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A spec as the plan makes it: the written image in the label and the
/// container, or (`running`) a deployed one whose container runs another.
fn spec(written: &str, running: &str) -> ServiceSpec {
    ServiceSpec {
        annotations: Some(Annotations {
            name: "shop_web".into(),
            labels: HashMap::from([(IMAGE_LABEL.to_string(), written.to_string())]),
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: running.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn new_services_are_resolved_unless_never() {
    let planned = spec("reg:5000/app:1", "reg:5000/app:1");
    assert_eq!(
        choose(ResolveImage::Always, &planned, None),
        Choice::Resolve
    );
    assert_eq!(
        choose(ResolveImage::Changed, &planned, None),
        Choice::Resolve
    );
    assert_eq!(
        choose(ResolveImage::Never, &planned, None),
        Choice::AsWritten
    );
}

#[test]
fn an_unchanged_image_keeps_its_pinned_digest_unless_always() {
    let planned = spec("reg:5000/app:1", "reg:5000/app:1");
    let pinned_ref = format!("reg:5000/app:1@{D1}");
    let stored = spec("reg:5000/app:1", &pinned_ref);
    for mode in [ResolveImage::Changed, ResolveImage::Never] {
        assert_eq!(
            choose(mode, &planned, Some(&stored)),
            Choice::Keep(pinned_ref.clone()),
            "{mode:?}"
        );
    }
    assert_eq!(
        choose(ResolveImage::Always, &planned, Some(&stored)),
        Choice::Resolve
    );
    // `busybox` was pinned as `busybox:latest@…`.
    let hub = spec("busybox", "busybox");
    let stored = spec("busybox", &format!("busybox:latest@{D1}"));
    assert_eq!(
        choose(ResolveImage::Changed, &hub, Some(&stored)),
        Choice::Keep(format!("busybox:latest@{D1}"))
    );
}

#[test]
fn a_changed_image_is_resolved_or_taken_as_written() {
    let planned = spec("reg:5000/app:2", "reg:5000/app:2");
    let stored = spec("reg:5000/app:1", &format!("reg:5000/app:1@{D1}"));
    assert_eq!(
        choose(ResolveImage::Changed, &planned, Some(&stored)),
        Choice::Resolve
    );
    assert_eq!(
        choose(ResolveImage::Never, &planned, Some(&stored)),
        Choice::AsWritten
    );
}

#[test]
fn an_image_changed_by_hand_is_put_back_to_the_files() {
    let planned = spec("reg:5000/app:1", "reg:5000/app:1");
    // `service update --image reg:5000/other:9` after the deploy.
    let stored = spec("reg:5000/app:1", "reg:5000/other:9");
    assert_eq!(
        choose(ResolveImage::Never, &planned, Some(&stored)),
        Choice::AsWritten
    );
    assert_eq!(
        choose(ResolveImage::Changed, &planned, Some(&stored)),
        Choice::Resolve
    );
    // Another digest of another tag is not "the written one pinned".
    let stored = spec("reg:5000/app:1", &format!("reg:5000/app:2@{D1}"));
    assert_eq!(
        choose(ResolveImage::Never, &planned, Some(&stored)),
        Choice::AsWritten
    );
}

#[test]
fn pinned_references_are_dockers_familiar_form() {
    assert_eq!(
        pinned("10.77.0.2:5000/busybox:1", D1).as_deref(),
        Some(format!("10.77.0.2:5000/busybox:1@{D1}").as_str())
    );
    assert_eq!(
        pinned("busybox", D1).as_deref(),
        Some(format!("busybox:latest@{D1}").as_str())
    );
    assert_eq!(
        pinned("docker.io/library/redis:7", D1).as_deref(),
        Some(format!("redis:7@{D1}").as_str())
    );
    assert_eq!(pinned("Not Valid", D1), None);
}

#[test]
fn the_warning_is_dockers() {
    assert_eq!(
        digest_warning("quickstart/busybox:1"),
        "image quickstart/busybox:1 could not be accessed on a registry to record\n\
         its digest. Each node will access quickstart/busybox:1 independently,\n\
         possibly leading to different nodes running different\n\
         versions of the image.\n"
    );
}
