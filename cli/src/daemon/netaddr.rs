//! Choosing addresses: the advertise address for `init` (the machine's one
//! non-loopback IPv4 address, or an error asking for `--advertise-addr`) and
//! for `join` (the local address that routes to the manager), and adding
//! the default port.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::{anyhow, bail};

pub(crate) const DEFAULT_PORT: u16 = 2377;

/// "ip" or "ip:port" → "ip:port" (port defaulting to `port`).
pub(crate) fn with_port(addr: &str, port: u16) -> anyhow::Result<String> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa.to_string());
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port).to_string());
    }
    if let Some((host, p)) = addr.rsplit_once(':') {
        let p: u16 = p
            .parse()
            .map_err(|_| anyhow!("invalid port in address {addr:?}"))?;
        if host.is_empty() {
            bail!("address {addr:?} has no host");
        }
        return Ok(format!("{host}:{p}"));
    }
    if addr.is_empty() {
        bail!("empty address");
    }
    Ok(format!("{addr}:{port}"))
}

/// The port of a listen address such as "0.0.0.0:2377".
pub(crate) fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(DEFAULT_PORT)
}

/// The machine's single non-loopback IPv4 address, for `init` without
/// `--advertise-addr`.
pub(crate) fn auto_advertise_ip() -> anyhow::Result<IpAddr> {
    let mut found: Vec<(String, IpAddr)> = vec![];
    let addrs =
        nix::ifaddrs::getifaddrs().map_err(|e| anyhow!("listing network interfaces: {e}"))?;
    for ifa in addrs {
        let Some(sa) = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in().copied())
        else {
            continue;
        };
        let ip = IpAddr::V4(sa.ip());
        if ip.is_loopback() {
            continue;
        }
        found.push((ifa.interface_name.clone(), ip));
    }
    found.dedup();
    match found.len() {
        0 => bail!("could not find an IP address to advertise: no network interface has a non-loopback IPv4 address; use --advertise-addr"),
        1 => Ok(found[0].1),
        _ => bail!(
            "could not choose an IP address to advertise since this system has multiple addresses ({}) - specify one with --advertise-addr",
            found.iter().map(|(i, a)| format!("{a} on {i}")).collect::<Vec<_>>().join(" and ")
        ),
    }
}

/// The local address the kernel would use to reach `remote` (host:port).
pub(crate) fn local_ip_towards(remote: &str) -> anyhow::Result<IpAddr> {
    let remote: SocketAddr = remote
        .parse()
        .map_err(|_| anyhow!("invalid manager address {remote:?}: expected IP:PORT"))?;
    let bind = if remote.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(remote)
        .map_err(|e| anyhow!("no route to {remote}: {e}"))?;
    Ok(s.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_added_and_kept() {
        assert_eq!(with_port("10.0.0.1", 2377).unwrap(), "10.0.0.1:2377");
        assert_eq!(with_port("10.0.0.1:4000", 2377).unwrap(), "10.0.0.1:4000");
        assert!(with_port("10.0.0.1:x", 2377).is_err());
        assert_eq!(port_of("0.0.0.0:2378"), 2378);
    }

    #[test]
    fn loopback_route() {
        assert_eq!(
            local_ip_towards("127.0.0.1:2377").unwrap().to_string(),
            "127.0.0.1"
        );
        assert!(local_ip_towards("nonsense").is_err());
    }
}
