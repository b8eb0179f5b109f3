//! The DNS-name rule for the names of services and networks (swarmkit's,
//! Docker's): a DNS name component of 1 to 63 characters, ASCII letters and
//! digits, with `-` or `_` inside but never first or last. The one version:
//! the CLI, the control API and the network allocator ask it.

/// The most characters a name may have (one DNS label).
const MAX_LEN: usize = 63;

/// Whether `name` is valid as a DNS name component.
pub fn is_dns_component(name: &str) -> bool {
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.len() <= MAX_LEN
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_components() {
        for ok in [
            "web",
            "web-1",
            "a_b",
            "W3b",
            "x",
            "my_app-1",
            &"a".repeat(63),
        ] {
            assert!(is_dns_component(ok), "{ok}");
        }
        for bad in [
            "",
            "-web",
            "web-",
            "web_",
            "-x",
            "we.b",
            "a.b",
            "web 1",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_component(bad), "{bad}");
        }
    }
}
