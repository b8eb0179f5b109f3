//! A task's resolver settings and extra `/etc/hosts` entries: the values of
//! `--dns`, `--dns-search`, `--dns-option` and `--host` (Docker's add-host),
//! and Compose's `dns`, `dns_search`, `dns_opt` and `extra_hosts`, parsed
//! here for the CLI and checked again by [`check_dns`] for every spec (so the
//! control API refuses a raw call's bad values in the same words).
//!
//! Everything ends up in a file the agent writes (`/etc/resolv.conf`,
//! `/etc/hosts`), one entry per line: no value may hold whitespace or a
//! control character, so no value can add a line of its own.
//!
//! A host entry is stored as Swarm stores it: `"IP HOSTNAME"` (the flag's
//! `HOST:IP` turned around), so `hosts` lines are written as they are.

use std::net::IpAddr;

use crate::types::ContainerSpec;

use super::ValueError;

/// Most nameservers, search domains or options of one task (glibc reads 3
/// nameservers and 6 search domains; the embedded DNS server forwards to
/// all the nameservers).
pub const MAX_DNS_ENTRIES: usize = 32;
/// Longest domain name (RFC 1035) and longest option.
const MAX_NAME_LEN: usize = 253;

/// `--dns`: an IPv4 or IPv6 address, normalised (`010.0.0.1` is refused
/// like Docker's parser does).
pub fn parse_dns_server(value: &str) -> Result<String, ValueError> {
    value
        .trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| ValueError(format!("{value} is not an ip address")))
}

/// `--dns-search`: a domain name, or `.` (Docker's: no search domain).
pub fn parse_dns_search(value: &str) -> Result<String, ValueError> {
    let v = value.trim();
    if v == "." {
        return Ok(v.to_string());
    }
    let name = v.strip_suffix('.').unwrap_or(v);
    if !is_domain_name(name) {
        return Err(ValueError(format!("{value} is not a valid domain")));
    }
    Ok(name.to_string())
}

/// `--dns-option`: one resolv.conf option word (`ndots:2`, `timeout:3`,
/// `rotate`, `edns0`).
pub fn parse_dns_option(value: &str) -> Result<String, ValueError> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= MAX_NAME_LEN
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#' && b != b';');
    if !ok {
        return Err(ValueError(format!(
            "invalid DNS option {value:?}: one word such as ndots:2 expected"
        )));
    }
    Ok(v.to_string())
}

/// `--host HOST:IP` (Docker's add-host; `HOST=IP` too), as the
/// `"IP HOST"` line the spec stores. An IPv6 address may be in brackets.
pub fn parse_extra_host(value: &str) -> Result<String, ValueError> {
    let bad = |why: &str| ValueError(format!("bad format for add-host: {value:?}: {why}"));
    let (host, ip) = match value.split_once('=') {
        Some(pair) => pair,
        None => value
            .split_once(':')
            .ok_or_else(|| bad("HOST:IP expected"))?,
    };
    let host = host.trim();
    let ip = ip.trim();
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    if host.is_empty() {
        return Err(bad("no host name"));
    }
    if !is_host_name(host) {
        return Err(bad(&format!("invalid host name {host:?}")));
    }
    if ip == "host-gateway" {
        return Err(bad("host-gateway is not supported"));
    }
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| bad(&format!("invalid IP address {ip:?}")))?;
    Ok(format!("{ip} {host}"))
}

/// A Compose `extra_hosts` entry or a spec's stored line the other way
/// round: `"IP HOST [ALIAS...]"` → (ip, names), checked.
pub fn parse_hosts_line(line: &str) -> Result<(IpAddr, Vec<String>), ValueError> {
    let mut words = line.split_whitespace();
    let bad = || {
        ValueError(format!(
            "invalid hosts entry {line:?}: \"IP HOSTNAME\" expected"
        ))
    };
    let ip: IpAddr = words.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let names: Vec<String> = words.map(str::to_string).collect();
    if names.is_empty() || names.iter().any(|n| !is_host_name(n)) {
        return Err(bad());
    }
    // Lines are written as they are: only single spaces or tabs between words.
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad());
    }
    Ok((ip, names))
}

/// A host name as /etc/hosts takes it: letters, digits, `-`, `_` and `.`,
/// at most 253 characters, no empty label.
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.split('.').any(str::is_empty)
}

/// A domain name: labels of letters, digits and `-` (not at either end),
/// each at most 63 characters, at most 253 in all.
fn is_domain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Every problem of a container's DNS settings and host entries.
pub fn check_dns(c: &ContainerSpec, out: &mut Vec<String>) {
    if let Some(d) = &c.dns_config {
        let lists = [
            (
                "DNS servers",
                &d.nameservers,
                parse_dns_server as fn(&str) -> _,
            ),
            ("DNS search domains", &d.search, parse_dns_search),
            ("DNS options", &d.options, parse_dns_option),
        ];
        for (what, values, parse) in lists {
            if values.len() > MAX_DNS_ENTRIES {
                out.push(format!(
                    "service spec has {} {what}, over the limit of {MAX_DNS_ENTRIES}",
                    values.len()
                ));
            }
            for v in values {
                if let Err(e) = parse(v) {
                    out.push(format!("ContainerSpec: {e}"));
                }
            }
        }
    }
    for line in &c.hosts {
        if let Err(e) = parse_hosts_line(line) {
            out.push(format!("ContainerSpec: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DnsConfig;

    #[test]
    fn servers_are_ip_addresses() {
        assert_eq!(parse_dns_server("10.0.0.2").unwrap(), "10.0.0.2");
        assert_eq!(parse_dns_server("2001:db8::1").unwrap(), "2001:db8::1");
        assert_eq!(
            parse_dns_server("dns.example").unwrap_err().0,
            "dns.example is not an ip address"
        );
    }

    #[test]
    fn search_domains_and_options() {
        assert_eq!(parse_dns_search("example.com.").unwrap(), "example.com");
        assert_eq!(parse_dns_search(".").unwrap(), ".");
        assert_eq!(
            parse_dns_search("-bad.example").unwrap_err().0,
            "-bad.example is not a valid domain"
        );
        assert!(parse_dns_search("a..b").is_err());
        assert!(parse_dns_search(&"a".repeat(64)).is_err());
        assert_eq!(parse_dns_option("ndots:2").unwrap(), "ndots:2");
        assert!(parse_dns_option("ndots:2\nnameserver 1.2.3.4").is_err());
        assert!(parse_dns_option("").is_err());
    }

    #[test]
    fn add_host_is_turned_around_as_swarm_stores_it() {
        assert_eq!(parse_extra_host("db:10.0.0.9").unwrap(), "10.0.0.9 db");
        assert_eq!(parse_extra_host("db=10.0.0.9").unwrap(), "10.0.0.9 db");
        assert_eq!(
            parse_extra_host("v6:2001:db8::9").unwrap(),
            "2001:db8::9 v6"
        );
        assert_eq!(
            parse_extra_host("v6:[2001:db8::9]").unwrap(),
            "2001:db8::9 v6"
        );
        assert_eq!(
            parse_extra_host("db").unwrap_err().0,
            "bad format for add-host: \"db\": HOST:IP expected"
        );
        assert!(parse_extra_host("db:notanip").is_err());
        assert!(parse_extra_host("d b:10.0.0.1").is_err());
        assert!(parse_extra_host(":10.0.0.1").is_err());
        assert!(parse_extra_host("gw:host-gateway").is_err());
    }

    #[test]
    fn a_spec_with_bad_values_is_refused_whole() {
        let c = ContainerSpec {
            dns_config: Some(DnsConfig {
                nameservers: vec!["1.1.1.1".into(), "nope".into()],
                search: vec!["ok.example".into()],
                options: vec!["bad\nline".into()],
            }),
            hosts: vec!["10.0.0.1 db".into(), "10.0.0.1".into()],
            ..Default::default()
        };
        let mut out = vec![];
        check_dns(&c, &mut out);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0], "ContainerSpec: nope is not an ip address");
        let many = ContainerSpec {
            dns_config: Some(DnsConfig {
                nameservers: vec!["1.1.1.1".into(); MAX_DNS_ENTRIES + 1],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut out = vec![];
        check_dns(&many, &mut out);
        assert_eq!(
            out,
            vec!["service spec has 33 DNS servers, over the limit of 32".to_string()]
        );
    }
}
