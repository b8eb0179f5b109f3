//! Addresses and names: task MACs derived from IPs, CIDR parsing, and the
//! rules for IDs and device names.

use std::net::Ipv4Addr;

use crate::error::OverlayError;

/// The MAC of an overlay interface with address `ip`, as Docker derives it:
/// `02:42:` followed by the four bytes of the address (locally administered,
/// unicast). Every node can compute a remote task's MAC from its IP, and the
/// same address always gets the same MAC.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Parse `a.b.c.d/len`.
pub(crate) fn parse_cidr(what: &'static str, s: &str) -> Result<(Ipv4Addr, u8), OverlayError> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| OverlayError::invalid(what, s, "expected a.b.c.d/len"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|e| OverlayError::invalid(what, s, format!("{e}")))?;
    let len: u8 = len
        .parse()
        .map_err(|e| OverlayError::invalid(what, s, format!("prefix length: {e}")))?;
    if len > 32 {
        return Err(OverlayError::invalid(what, s, "prefix length above 32"));
    }
    Ok((ip, len))
}

/// Parse a plain address, or an address with a prefix length (which is ignored).
pub(crate) fn parse_ip(what: &'static str, s: &str) -> Result<Ipv4Addr, OverlayError> {
    let plain = s.split_once('/').map_or(s, |(ip, _)| ip);
    plain
        .parse()
        .map_err(|e| OverlayError::invalid(what, s, format!("{e}")))
}

/// Whether `ip` is inside `net/len`.
pub(crate) fn contains(net: Ipv4Addr, len: u8, ip: Ipv4Addr) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(net) & mask == u32::from(ip) & mask
}

/// Prefix of the file names of network sandboxes in the state directory (as
/// Docker's `1-<network id>` namespaces); task IDs may not start with it.
pub(crate) const SANDBOX_PREFIX: &str = "1-";

/// Check an ID used as a file name: 1..=128 characters of `[A-Za-z0-9_.-]`,
/// not starting with `.`; task IDs also may not start with `1-`.
pub(crate) fn check_id(what: &'static str, id: &str) -> Result<(), OverlayError> {
    if id.is_empty() || id.len() > 128 {
        return Err(OverlayError::invalid(
            what,
            id,
            "must be 1 to 128 characters",
        ));
    }
    if id.starts_with('.') {
        return Err(OverlayError::invalid(what, id, "may not start with '.'"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(OverlayError::invalid(
            what,
            id,
            "only letters, digits, '_', '-' and '.' are allowed",
        ));
    }
    if what == "task id" && id.starts_with(SANDBOX_PREFIX) {
        return Err(OverlayError::invalid(
            what,
            id,
            "may not start with \"1-\" (reserved for network sandboxes)",
        ));
    }
    Ok(())
}

/// 64-bit FNV-1a: a stable hash (it names devices, so it must not change
/// between builds, which `std`'s hasher does not promise).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The name of a task's veth end inside a network sandbox: `veth` and 11 hex
/// digits of a hash of the task ID (15 characters, the kernel's limit). The
/// task ID itself is written in the device's alias.
pub(crate) fn sandbox_veth_name(task_id: &str) -> String {
    format!("veth{:011x}", fnv1a(task_id.as_bytes()) >> 20)
}

/// The alias of a task's veth end in a sandbox: names the task, for cleanup.
pub(crate) fn veth_alias(task_id: &str) -> String {
    format!("rswarm task={task_id}")
}

/// The task ID in an alias written by [`veth_alias`].
pub(crate) fn alias_task(alias: &str) -> Option<&str> {
    alias.strip_prefix("rswarm task=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_docker_style() {
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 30, 0, 2)),
            [0x02, 0x42, 10, 30, 0, 2]
        );
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("x", "10.30.0.2/24").ok(),
            Some((Ipv4Addr::new(10, 30, 0, 2), 24))
        );
        assert!(parse_cidr("x", "10.30.0.2").is_err());
        assert!(parse_cidr("x", "10.30.0.2/33").is_err());
        assert!(parse_cidr("x", "10.30.0/24").is_err());
        assert!(contains(
            Ipv4Addr::new(10, 30, 0, 0),
            24,
            Ipv4Addr::new(10, 30, 0, 9)
        ));
        assert!(!contains(
            Ipv4Addr::new(10, 30, 0, 0),
            24,
            Ipv4Addr::new(10, 31, 0, 9)
        ));
        assert!(contains(
            Ipv4Addr::new(0, 0, 0, 0),
            0,
            Ipv4Addr::new(1, 2, 3, 4)
        ));
    }

    #[test]
    fn names() {
        let n = sandbox_veth_name("abcdefghijklmnopqrstuvwxy");
        assert_eq!(n.len(), 15);
        assert_eq!(n, sandbox_veth_name("abcdefghijklmnopqrstuvwxy"));
        assert_ne!(n, sandbox_veth_name("abcdefghijklmnopqrstuvwxz"));
        assert_eq!(alias_task(&veth_alias("t1")), Some("t1"));
        assert!(check_id("task id", "1-abc").is_err());
        assert!(check_id("network id", "1-abc").is_ok());
        assert!(check_id("task id", "../x").is_err());
        assert!(check_id("task id", "").is_err());
        assert!(check_id("task id", "x9zq2k1m0a").is_ok());
    }
}
