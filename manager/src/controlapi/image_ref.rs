//! The control API's check of a service's image reference, so that no client
//! can store an image no node could ever pull: the repository path must be
//! lowercase, in Docker's words ("invalid reference format: repository name
//! must be lowercase"). The full grammar lives with the parsers of the CLI
//! and the agent; this only refuses what would leave tasks rejected forever.

/// Docker's words for an upper-case repository name.
pub const MUST_BE_LOWERCASE: &str = "invalid reference format: repository name must be lowercase";

/// Checks `image` (`[registry/]path[:tag][@digest]`); the error is the
/// message a user reads.
pub fn check(image: &str) -> Result<(), String> {
    let name = image.split('@').next().unwrap_or(image);
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    let path = match name.split_once('/') {
        // A registry host has a '.' or a ':' or is localhost; an upper-case
        // first component without them is a repository name, not a host.
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    };
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("{MUST_BE_LOWERCASE} (image \"{image}\")"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn upper_case_repositories_are_refused() {
        for bad in [
            "UPPER/case",
            "Busybox",
            "me/App:1",
            "reg.local:5000/App",
            "UPPER/case@sha256:ab",
        ] {
            let e = check(bad).err().unwrap_or_default();
            assert!(e.starts_with(super::MUST_BE_LOWERCASE), "{bad}: {e}");
        }
        for good in [
            "busybox",
            "busybox:Latest",
            "REG.local:5000/app:V1",
            "localhost/x",
            "10.77.0.2:5000/busybox:1",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }
}
