//! Image references, parsed and normalised as Docker does
//! (`distribution/reference`'s `ParseNormalizedNamed`):
//!
//! * `redis` → `docker.io/library/redis:latest`, `me/app` → `docker.io/me/app:latest`;
//! * the first path component is a registry when it has a `.` or a `:` or is
//!   `localhost` (`10.77.0.2:5000/busybox:1`, `registry.local/app`); one
//!   that is only upper-case (`UPPER/case`) is refused as a repository name
//!   that must be lowercase, where Docker would try a registry `UPPER`;
//! * `index.docker.io` is `docker.io`;
//! * `:latest` is added only when there is neither tag nor digest; a digest
//!   (`@sha256:<64 hex>`, the only algorithm the store supports) is kept, with
//!   the tag if both were given;
//! * repository components are lowercase `[a-z0-9]` runs joined by `.`, `_`,
//!   `__` or dashes; a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; the name is at
//!   most 255 characters; a bare 64-hex string is refused (it is an image ID).

use super::{sha256_hex, ImageError};

const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalised reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// Registry host, with port if any (`docker.io`, `10.77.0.2:5000`).
    pub domain: String,
    /// Repository path in the registry (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Normalises a reference: `redis` → `docker.io/library/redis:latest`.
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    Ok(ImageRef::parse(reference)?.to_string())
}

fn invalid(input: &str, why: &str) -> ImageError {
    ImageError::InvalidReference(format!("{why} (image \"{input}\")"))
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, ImageError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                input,
                "cannot specify 64-byte hexadecimal strings (an image ID is not a repository name)",
            ));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                if d.contains('@') {
                    return Err(invalid(input, "more than one '@'"));
                }
                if !d.starts_with("sha256:") {
                    return Err(invalid(input, "unsupported digest algorithm (only sha256)"));
                }
                if sha256_hex(d).is_none() {
                    return Err(invalid(input, "invalid checksum digest format"));
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[slash..].rfind(':') {
            Some(i) => (
                &name_tag[..slash + i],
                Some(name_tag[slash + i + 1..].to_string()),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(invalid(input, "invalid tag format"));
            }
        }
        if name.is_empty() {
            return Err(invalid(
                input,
                "repository name must have at least one component",
            ));
        }
        let (domain, mut path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                // `UPPER/case`: Docker reads a registry `UPPER`, but no registry
                // is reached by a dotless upper-case name; it is a repository.
                if !first.contains(['.', ':']) && first != "localhost" {
                    return Err(invalid(input, "repository name must be lowercase"));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            domain
        };
        if !valid_domain(&domain) {
            return Err(invalid(input, "invalid registry host"));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(input, "repository name must be lowercase"));
        }
        if domain == DOCKER_HUB && !path.contains('/') {
            path = format!("library/{path}");
        }
        if path.split('/').any(|c| !valid_path_component(c)) {
            return Err(invalid(input, "invalid repository name"));
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(invalid(
                input,
                "repository name must not be more than 255 characters",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(ImageRef {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn is_docker_hub(&self) -> bool {
        self.domain == DOCKER_HUB
    }

    /// Docker's short name: `docker.io/library/redis` → `redis`,
    /// `docker.io/me/app` → `me/app`, others unchanged.
    pub fn familiar_name(&self) -> String {
        if self.is_docker_hub() {
            self.path
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The familiar name with tag and digest (`redis:latest`).
    pub fn familiar(&self) -> String {
        with_suffix(self.familiar_name(), &self.tag, &self.digest)
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&with_suffix(self.name(), &self.tag, &self.digest))
    }
}

fn with_suffix(mut s: String, tag: &Option<String>, digest: &Option<String>) -> String {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d);
    }
    s
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_lowercase()
}

/// `host[:port]` where host is DNS labels, an IPv4 address or `[ipv6]`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(port) => ("", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return false;
        }
    }
    if d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalize_table() {
        let cases: &[(&str, &str)] = &[
            ("redis", "docker.io/library/redis:latest"),
            ("redis:7", "docker.io/library/redis:7"),
            ("me/app", "docker.io/me/app:latest"),
            ("me/app:v1.2", "docker.io/me/app:v1.2"),
            ("docker.io/redis", "docker.io/library/redis:latest"),
            (
                "index.docker.io/library/redis:6",
                "docker.io/library/redis:6",
            ),
            ("docker.io/me/sub/app", "docker.io/me/sub/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
            ("10.77.0.2:5000/busybox:1", "10.77.0.2:5000/busybox:1"),
            ("registry.local/team/app", "registry.local/team/app:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("a-b.c/e__f", "a-b.c/e__f:latest"),
            ("foo_bar/baz-qux", "docker.io/foo_bar/baz-qux:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(*want), "{input}");
        }
        assert_eq!(
            normalize(&format!("busybox@{D}")).unwrap(),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            normalize(&format!("10.77.0.2:5000/busybox:1@{D}")).unwrap(),
            format!("10.77.0.2:5000/busybox:1@{D}")
        );
    }

    #[test]
    fn normalize_refuses_bad_references() {
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

    #[test]
    fn familiar_names() {
        let r = ImageRef::parse("redis").unwrap();
        assert_eq!(r.familiar(), "redis:latest");
        assert_eq!(r.familiar_name(), "redis");
        let r = ImageRef::parse("me/app:2").unwrap();
        assert_eq!(r.familiar(), "me/app:2");
        let r = ImageRef::parse("10.77.0.2:5000/nope").unwrap();
        assert_eq!(r.familiar_name(), "10.77.0.2:5000/nope");
        assert_eq!(r.target(), "latest");
    }
}
