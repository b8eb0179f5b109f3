//! Image references in Docker's grammar (`distribution/reference`):
//! `[domain[:port]/]path[:tag][@algorithm:hex]`, with Docker Hub's short
//! names (`redis` is `docker.io/library/redis`) and the "familiar" form
//! Docker shows people (`redis:7` rather than `docker.io/library/redis:7`).

use std::fmt;

use super::ValueError;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LENGTH: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host and port; `docker.io` for Docker Hub.
    pub domain: String,
    /// Repository path in the registry (`library/redis`).
    pub path: String,
    pub tag: Option<String>,
    /// `algorithm:hex`.
    pub digest: Option<String>,
}

fn invalid() -> ValueError {
    ValueError::new("invalid reference format")
}

fn lowercase() -> ValueError {
    ValueError::new("invalid reference format: repository name must be lowercase")
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or dashes.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
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

/// A host name or address with an optional port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, tail)) => {
                if ip6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, tail.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|part| {
                    let b = part.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                })
        }
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn valid_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = algorithm.split(['+', '.', '-', '_']).all(|c| {
        c.starts_with(|x: char| x.is_ascii_alphabetic())
            && c.bytes().all(|x| x.is_ascii_alphanumeric())
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|x| x.is_ascii_hexdigit())
}

impl ImageRef {
    /// Docker's `ParseNormalizedNamed`: refuses what Docker refuses with its
    /// words ("invalid reference format", "… must be lowercase").
    pub fn parse(s: &str) -> Result<ImageRef, ValueError> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid());
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                let t = &t[1..];
                if !valid_tag(t) {
                    return Err(invalid());
                }
                (n, Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid());
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                // Docker would take `UPPER/case` as the registry `UPPER`; no
                // registry is reached by a dotless upper-case name, and what
                // the user meant is a repository: refuse it as one.
                if !first.contains(['.', ':']) && first != "localhost" {
                    return Err(lowercase());
                }
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == LEGACY_DOMAIN {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        if !valid_domain(&domain) {
            return Err(invalid());
        }
        if path.split('/').any(|c| !valid_path_component(c)) {
            if path.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(lowercase());
            }
            return Err(invalid());
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LENGTH {
            return Err(ValueError(format!(
                "repository name must not be more than {MAX_NAME_LENGTH} characters"
            )));
        }
        Ok(ImageRef {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The same reference with tag `latest` when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> ImageRef {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// `domain/path`, the full repository name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker shows it: Hub images without `docker.io/`
    /// and official images without `library/` (`redis`, `user/app`,
    /// `registry.local:5000/busybox`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The familiar name with the tag, without the digest when there is a
    /// tag: what `service ls` and `service ps` show in IMAGE.
    pub fn familiar_tagged(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.familiar_name()),
            (None, Some(d)) => format!("{}@{d}", self.familiar_name()),
            (None, None) => self.familiar_name(),
        }
    }
}

impl fmt::Display for ImageRef {
    /// The full form: `docker.io/library/redis:7@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// What IMAGE columns show for a spec's image string: the familiar tagged
/// form, or the string as it is when it does not parse.
pub fn display_image(image: &str) -> String {
    ImageRef::parse(image).map_or_else(|_| image.to_string(), |r| r.familiar_tagged())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_hub_short_names() {
        let r = parse("redis");
        assert_eq!(r.to_string(), "docker.io/library/redis");
        assert_eq!(
            r.clone().with_default_tag().to_string(),
            "docker.io/library/redis:latest"
        );
        assert_eq!(r.familiar_name(), "redis");
        assert_eq!(parse("user/app:1").familiar_tagged(), "user/app:1");
        assert_eq!(
            parse("docker.io/library/redis:7").familiar_tagged(),
            "redis:7"
        );
        assert_eq!(parse("index.docker.io/library/redis").domain, "docker.io");
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        let r = parse("registry.local:5000/busybox:1");
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("registry.local:5000", "busybox", Some("1"))
        );
        assert_eq!(r.familiar_tagged(), "registry.local:5000/busybox:1");
        assert_eq!(parse("localhost/x").domain, "localhost");
        let pinned = parse(&format!("nginx:1.25@{DIGEST}"));
        assert_eq!(pinned.familiar_tagged(), "nginx:1.25");
        assert_eq!(
            parse(&format!("nginx@{DIGEST}")).familiar_tagged(),
            format!("nginx@{DIGEST}")
        );
        assert_eq!(
            display_image(&format!("registry.local:5000/busybox:1@{DIGEST}")),
            "registry.local:5000/busybox:1"
        );
    }

    #[test]
    fn refusals() {
        let err = |s: &str| ImageRef::parse(s).map_err(|e| e.to_string()).err();
        assert_eq!(
            err("Busybox"),
            Some("invalid reference format: repository name must be lowercase".into())
        );
        for upper in ["UPPER/case", "UPPER/case:1", "Me/app", "upper/CASE"] {
            assert_eq!(
                err(upper),
                Some("invalid reference format: repository name must be lowercase".into()),
                "{upper}"
            );
        }
        assert_eq!(parse("REG.local:5000/app").domain, "REG.local:5000");
        assert_eq!(err(""), Some("invalid reference format".into()));
        assert_eq!(err("a b"), Some("invalid reference format".into()));
        assert_eq!(err("busybox:"), Some("invalid reference format".into()));
        assert_eq!(
            err("busybox@sha256:abc"),
            Some("invalid reference format".into())
        );
        assert_eq!(err("-x"), Some("invalid reference format".into()));
        assert_eq!(display_image("Not Valid"), "Not Valid");
    }
}
