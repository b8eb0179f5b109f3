//! Addresses and names: task MACs derived from IPs, CIDR parsing, and the
//! rules for IDs and device names (and the aliases that tie a device to its
//! task or network, so a restarted daemon can find what is whose).

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

/// Check the index `N` of a task interface `eth<N>` (0..=9999).
pub(crate) fn check_iface_index(index: usize) -> Result<(), OverlayError> {
    if index > 9999 {
        return Err(OverlayError::invalid(
            "interface index",
            &index.to_string(),
            "at most 9999",
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

/// The name of a task's veth end on the gateway bridge, in the node's
/// namespace: `rswg` and 11 hex digits of a hash of the task ID (15
/// characters). The task ID and its address are written in the alias
/// ([`gateway_alias`]).
pub(crate) fn gateway_veth_name(task_id: &str) -> String {
    format!(
        "{GATEWAY_VETH_PREFIX}{:011x}",
        fnv1a(task_id.as_bytes()) >> 20
    )
}

/// The prefix of [`gateway_veth_name`].
pub(crate) const GATEWAY_VETH_PREFIX: &str = "rswg";

/// The prefix of [`host_leg_name`].
pub(crate) const HOST_LEG_PREFIX: &str = "rswi";

/// The name of the node's own leg on a network, in the node's namespace:
/// `rswi` and 11 hex digits of a hash of the network ID (15 characters).
pub(crate) fn host_leg_name(network_id: &str) -> String {
    format!(
        "{HOST_LEG_PREFIX}{:011x}",
        fnv1a(network_id.as_bytes()) >> 20
    )
}

/// The sandbox end of the node's leg on a network (one per sandbox).
pub(crate) const HOST_LEG_PEER: &str = "hostleg0";

/// The alias of a task's veth end on the gateway bridge: the task and the
/// address it was given, which is how a restarted daemon learns which
/// addresses are taken.
pub(crate) fn gateway_alias(task_id: &str, ip: Ipv4Addr) -> String {
    format!("rswarm gateway task={task_id} ip={ip}")
}

/// The task and address in an alias written by [`gateway_alias`].
pub(crate) fn alias_gateway(alias: &str) -> Option<(&str, Ipv4Addr)> {
    let rest = alias.strip_prefix("rswarm gateway task=")?;
    let (task, ip) = rest.split_once(" ip=")?;
    Some((task, ip.parse().ok()?))
}

/// The alias of the node's leg on a network (both ends): names the network.
pub(crate) fn host_leg_alias(network_id: &str) -> String {
    format!("rswarm host-leg network={network_id}")
}

/// The network ID in an alias written by [`host_leg_alias`].
pub(crate) fn alias_host_leg(alias: &str) -> Option<&str> {
    alias.strip_prefix("rswarm host-leg network=")
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
        let g = gateway_veth_name("abcdefghijklmnopqrstuvwxy");
        assert_eq!(g.len(), 15);
        assert!(g.starts_with("rswg"));
        assert_eq!(&g[4..], &n[4..], "same hash, distinct prefix");
        let i = host_leg_name("ingressnetworkid0000000000");
        assert_eq!(i.len(), 15);
        assert!(i.starts_with("rswi"));
        let ip = Ipv4Addr::new(172, 18, 0, 9);
        assert_eq!(
            alias_gateway(&gateway_alias("t.1-x", ip)),
            Some(("t.1-x", ip))
        );
        assert_eq!(alias_gateway("rswarm gateway task=t ip=nope"), None);
        assert_eq!(alias_gateway(&veth_alias("t1")), None);
        assert_eq!(alias_task(&gateway_alias("t1", ip)), None);
        assert_eq!(alias_host_leg(&host_leg_alias("ing")), Some("ing"));
        assert!(check_id("task id", "1-abc").is_err());
        assert!(check_id("network id", "1-abc").is_ok());
        assert!(check_id("task id", "../x").is_err());
        assert!(check_id("task id", "").is_err());
        assert!(check_id("task id", "x9zq2k1m0a").is_ok());
    }
}
