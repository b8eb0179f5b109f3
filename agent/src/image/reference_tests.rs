//! The agent's reading of image references: the spec library's parser with
//! `:latest` added, sha256 digests only, errors naming the image.

use super::{normalize, ImageError};

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn normalize_adds_latest_and_keeps_digests() {
    assert_eq!(
        normalize("redis").as_deref(),
        Ok("docker.io/library/redis:latest")
    );
    assert_eq!(
        normalize("localhost:5000/a/b:1").as_deref(),
        Ok("localhost:5000/a/b:1")
    );
    assert_eq!(
        normalize(&format!("busybox@{D}")).ok(),
        Some(format!("docker.io/library/busybox@{D}"))
    );
    assert_eq!(
        normalize(&format!("10.77.0.2:5000/busybox:1@{D}")).ok(),
        Some(format!("10.77.0.2:5000/busybox:1@{D}"))
    );
}

#[test]
fn normalize_refuses_bad_references() {
    let sha512 = format!("redis@sha512:{}", "0".repeat(128));
    for bad in [
        "",
        "Redis",
        "me/App",
        "redis:",
        "redis:-x",
        "a//b",
        "/a",
        "a/",
        "redis@sha256:abc",
        "redis@md5:0123456789abcdef0123456789abcdef",
        &sha512,
        "a b",
        "reg:99999/x",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "x--y/.z",
        "a_b.c/e",
    ] {
        match normalize(bad) {
            Err(ImageError::InvalidReference(_)) => {}
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    for upper in ["Redis", "UPPER/case", "me/App"] {
        assert_eq!(
            normalize(upper).map_err(|e| e.to_string()),
            Err(format!(
                "invalid reference format: repository name must be lowercase (image \"{upper}\")"
            ))
        );
    }
    assert_eq!(
        normalize("REG.local:5000/app").ok().as_deref(),
        Some("REG.local:5000/app:latest")
    );
}
