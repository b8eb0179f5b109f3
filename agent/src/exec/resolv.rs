//! A task's resolver file and extra host entries, from its spec's
//! `dns_config` (`--dns`, `--dns-search`, `--dns-option`) and `hosts`
//! (`--host`), as Docker writes them:
//!
//! * A task on an overlay network resolves through the embedded DNS server:
//!   its resolv.conf says `nameserver 127.0.0.11`, then the search domains and
//!   the options (`ndots:0` unless the user set `ndots`). The `--dns` servers
//!   are not written there: the embedded server forwards the names it does
//!   not know to them ([`task_upstreams`]), so service names still resolve.
//! * A task without networks gets the host's resolv.conf with each part the
//!   user set replaced (nameservers, search domains, options).
//! * Host entries are stored as `"IP NAME [ALIAS...]"` lines (checked by
//!   `rswarm_proto::spec::dns`) and written to /etc/hosts as they are.

use std::net::{IpAddr, SocketAddr};

use rswarm_proto::types::{ContainerSpec, DnsConfig};

/// The embedded DNS server's address, as resolv.conf names it.
const EMBEDDED: &str = "127.0.0.11";

/// The task's own resolvers, port 53 (empty: the host's).
pub(crate) fn task_upstreams(c: Option<&ContainerSpec>) -> Vec<SocketAddr> {
    c.and_then(|c| c.dns_config.as_ref())
        .map(|d| {
            d.nameservers
                .iter()
                .filter_map(|n| n.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        })
        .unwrap_or_default()
}

/// Search domains as written: `.` means none.
fn search(d: &DnsConfig) -> Vec<&str> {
    d.search
        .iter()
        .map(String::as_str)
        .filter(|s| *s != ".")
        .collect()
}

/// The resolv.conf of a task: through the embedded server (`embedded`), or
/// the host's (`host`) with what the user set replaced.
pub(crate) fn resolv_conf(host: &str, dns: Option<&DnsConfig>, embedded: bool) -> String {
    let empty = DnsConfig::default();
    let d = dns.unwrap_or(&empty);
    if embedded {
        let mut out = format!("nameserver {EMBEDDED}\n");
        let domains = search(d);
        if !domains.is_empty() {
            out.push_str(&format!("search {}\n", domains.join(" ")));
        }
        let mut options: Vec<&str> = d.options.iter().map(String::as_str).collect();
        if !options.iter().any(|o| o.starts_with("ndots:")) {
            options.insert(0, "ndots:0");
        }
        out.push_str(&format!("options {}\n", options.join(" ")));
        return out;
    }
    let mut out = String::new();
    for line in host.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let replaced = match key {
            "nameserver" => !d.nameservers.is_empty(),
            "search" | "domain" => !d.search.is_empty(),
            "options" => !d.options.is_empty(),
            _ => false,
        };
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    for n in &d.nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    let domains = search(d);
    if !domains.is_empty() {
        out.push_str(&format!("search {}\n", domains.join(" ")));
    }
    if !d.options.is_empty() {
        out.push_str(&format!("options {}\n", d.options.join(" ")));
    }
    out
}

/// The spec's host lines as (ip, names); a line that does not parse (the
/// control API refuses those) is skipped.
pub(crate) fn extra_hosts(lines: &[String]) -> Vec<(String, Vec<String>)> {
    lines
        .iter()
        .filter_map(|l| rswarm_proto::spec::dns::parse_hosts_line(l).ok())
        .map(|(ip, names)| (ip.to_string(), names))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(ns: &[&str], search: &[&str], opts: &[&str]) -> DnsConfig {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        DnsConfig {
            nameservers: v(ns),
            search: v(search),
            options: v(opts),
        }
    }

    #[test]
    fn on_an_overlay_the_embedded_server_stays_the_nameserver() {
        assert_eq!(
            resolv_conf("nameserver 1.1.1.1\n", None, true),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
        let d = dns(&["10.0.0.53"], &["corp.example", "example"], &["timeout:3"]);
        assert_eq!(
            resolv_conf("", Some(&d), true),
            "nameserver 127.0.0.11\nsearch corp.example example\noptions ndots:0 timeout:3\n"
        );
        let d = dns(&[], &["."], &["ndots:2"]);
        assert_eq!(
            resolv_conf("", Some(&d), true),
            "nameserver 127.0.0.11\noptions ndots:2\n"
        );
        let spec = ContainerSpec {
            dns_config: Some(dns(&["10.0.0.53", "2001:db8::53"], &[], &[])),
            ..Default::default()
        };
        assert_eq!(
            task_upstreams(Some(&spec)),
            vec![
                "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn without_networks_the_hosts_file_is_changed_where_the_user_said() {
        let host = "# host\nnameserver 1.1.1.1\nsearch lan\noptions edns0\n";
        assert_eq!(resolv_conf(host, None, false), host);
        let d = dns(&["10.0.0.53"], &[], &[]);
        assert_eq!(
            resolv_conf(host, Some(&d), false),
            "# host\nsearch lan\noptions edns0\nnameserver 10.0.0.53\n"
        );
        let d = dns(&[], &["corp.example"], &["ndots:1"]);
        assert_eq!(
            resolv_conf(host, Some(&d), false),
            "# host\nnameserver 1.1.1.1\nsearch corp.example\noptions ndots:1\n"
        );
    }

    #[test]
    fn host_lines_become_entries() {
        assert_eq!(
            extra_hosts(&["10.0.0.9 db".into(), "2001:db8::1 v6 v6-alias".into()]),
            vec![
                ("10.0.0.9".to_string(), vec!["db".to_string()]),
                (
                    "2001:db8::1".to_string(),
                    vec!["v6".to_string(), "v6-alias".to_string()]
                ),
            ]
        );
    }
}
