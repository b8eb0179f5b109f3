//! Image references in Docker's grammar (`distribution/reference`'s
//! `ParseNormalizedNamed`): `[domain[:port]/]path[:tag][@algorithm:hex]`,
//! the one parser the CLI, the control API and the agent use.
//!
//! * `redis` is `docker.io/library/redis`, `me/app` is `docker.io/me/app`,
//!   `index.docker.io` is `docker.io`; [`ImageRef::with_default_tag`] adds
//!   `:latest` when there is neither tag nor digest;
//! * the first path component is a registry when it has a `.` or a `:` or is
//!   `localhost` (`localhost:5000/a/b:1`, `10.77.0.2:5000/busybox`); a port
//!   is 0-65535; one that is only upper-case (`UPPER/case`) is refused as a
//!   repository name that must be lowercase, where Docker would try a
//!   registry `UPPER`;
//! * a digest is `sha256:` with 64 hex digits (or `sha384:`/`sha512:` with
//!   96/128), kept with the tag when both are given; a bare 64-hex string
//!   is refused (it is an image ID);
//! * repository components are lowercase `[a-z0-9]` runs joined by `.`, `_`,
//!   `__` or dashes; a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; the name
//!   is at most 255 characters.
//!
//! It also writes the "familiar" form Docker shows people (`redis:7` rather
//! than `docker.io/library/redis:7`).

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

/// A host name or address with an optional port (0-65535).
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
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
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

/// `algorithm:hex` as the grammar reads it, then as `go-digest` checks it:
/// a known algorithm with its hex length.
fn check_digest(d: &str) -> Result<(), ValueError> {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return Err(invalid());
    };
    let alg_ok = algorithm.split(['+', '.', '-', '_']).all(|c| {
        c.starts_with(|x: char| x.is_ascii_alphabetic())
            && c.bytes().all(|x| x.is_ascii_alphanumeric())
    });
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|x| x.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ValueError::new("unsupported digest algorithm")),
    };
    if hex.len() != want {
        return Err(ValueError::new("invalid checksum digest length"));
    }
    Ok(())
}

impl ImageRef {
    /// Docker's `ParseNormalizedNamed`: refuses what Docker refuses with its
    /// words ("invalid reference format", "… must be lowercase").
    pub fn parse(s: &str) -> Result<ImageRef, ValueError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValueError(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                check_digest(d)?;
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

    /// Whether the registry is Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.domain == DEFAULT_DOMAIN
    }

    /// What to ask a registry for: the digest if there is one, else the tag
    /// (`latest` when there is neither).
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `domain/path`, the full repository name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker shows it: Hub images without `docker.io/`
    /// and official images without `library/` (`redis`, `user/app`,
    /// `registry.local:5000/busybox`).
    pub fn familiar_name(&self) -> String {
        if self.is_docker_hub() {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The familiar name with tag and digest (`redis:latest`,
    /// `redis:7@sha256:…`): how the agent names what it pulls.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
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
            ("localhost:5000/a/b:1", "localhost:5000/a/b:1"),
            ("10.77.0.2:5000/busybox:1", "10.77.0.2:5000/busybox:1"),
            ("registry.local/team/app", "registry.local/team/app:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("a-b.c/e__f", "a-b.c/e__f:latest"),
            ("foo_bar/baz-qux", "docker.io/foo_bar/baz-qux:latest"),
            ("REG.local:5000/app", "REG.local:5000/app:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).with_default_tag().to_string(),
                *want,
                "{input}"
            );
        }
        assert_eq!(
            parse(&format!("busybox@{DIGEST}"))
                .with_default_tag()
                .to_string(),
            format!("docker.io/library/busybox@{DIGEST}")
        );
        let r = parse("10.77.0.2:5000/nope");
        assert_eq!(
            (r.familiar_name().as_str(), r.target()),
            ("10.77.0.2:5000/nope", "latest")
        );
        assert_eq!(parse("redis").with_default_tag().familiar(), "redis:latest");
        for bad in [
            "", "Redis", "me/App", "redis:", "redis:-x", "a//b", "/a", "a/", "a b", " busybox",
            "x--y/.z", "a_b.c/e",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
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
        assert_eq!(err("reg:99999/x"), Some("invalid reference format".into()));
        assert_eq!(
            err(&format!("x@md5:{}", "0".repeat(32))),
            Some("unsupported digest algorithm".into())
        );
        assert_eq!(
            err(&format!("x@sha256:{}", "0".repeat(40))),
            Some("invalid checksum digest length".into())
        );
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(
            err(&id),
            Some(format!(
                "invalid repository name ({id}), cannot specify 64-byte hexadecimal strings"
            ))
        );
        assert_eq!(display_image("Not Valid"), "Not Valid");
    }
}
