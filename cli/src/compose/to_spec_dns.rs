//! Compose's `dns`, `dns_search`, `dns_opt` and `extra_hosts` as the edits
//! of `service create --dns`, `--dns-search`, `--dns-option` and `--host`,
//! each value parsed by the same `rswarm_proto::spec::dns` rules; a bad
//! value is refused with its key path. `extra_hosts` comes as `host:ip`
//! pairs from the reader (list `"host:ip"` or map `host: ip`).

use rswarm_proto::spec::dns::{
    parse_dns_option, parse_dns_search, parse_dns_server, parse_extra_host,
};

use super::super::model::Service;
use super::Conv;
use crate::servicespec::edits::SpecEdit;

impl Conv<'_> {
    /// The resolver settings and host entries of service `name`.
    pub(super) fn dns(&mut self, name: &str, s: &Service, edits: &mut Vec<SpecEdit>) {
        let at = |key: &str| format!("services.{name}.{key}");
        for v in &s.dns {
            if let Some(ip) = self.value(&at("dns"), v, parse_dns_server) {
                edits.push(SpecEdit::DnsServer(ip));
            }
        }
        for v in &s.dns_search {
            if let Some(d) = self.value(&at("dns_search"), v, parse_dns_search) {
                edits.push(SpecEdit::DnsSearch(d));
            }
        }
        for v in &s.dns_opt {
            if let Some(o) = self.value(&at("dns_opt"), v, parse_dns_option) {
                edits.push(SpecEdit::DnsOption(o));
            }
        }
        for (host, ip) in &s.extra_hosts {
            let pair = format!("{host}:{ip}");
            if let Some(line) = self.value(&at("extra_hosts"), &pair, parse_extra_host) {
                edits.push(SpecEdit::Host(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::compose::to_spec::plan;
    use crate::compose::{load, Source};

    fn plan_of(text: &str) -> Result<super::super::StackPlan, Vec<String>> {
        let sources = [Source {
            name: "app.yml".into(),
            text: text.into(),
        }];
        let loaded = load(&sources, Path::new("/srv/app"), None, &|_| None)?;
        plan(&loaded.project, "shop", "app.yml")
    }

    #[test]
    fn keys_become_the_flags_fields() {
        let p = plan_of(
            "services:
  web:
    image: busybox
    dns: [10.0.0.53, 10.0.0.54]
    dns_search: corp.example
    dns_opt: [ndots:2]
    extra_hosts: [\"db:10.0.0.9\"]
  api:
    image: busybox
    extra_hosts:
      cache: 10.0.0.10
",
        )
        .expect("converts");
        let c = |i: usize| {
            p.services[i]
                .task
                .clone()
                .and_then(|t| t.container)
                .unwrap_or_default()
        };
        let web = c(0);
        let d = web.dns_config.unwrap_or_default();
        assert_eq!(d.nameservers, ["10.0.0.53", "10.0.0.54"]);
        assert_eq!(d.search, ["corp.example"]);
        assert_eq!(d.options, ["ndots:2"]);
        assert_eq!(web.hosts, ["10.0.0.9 db"]);
        assert_eq!(c(1).hosts, ["10.0.0.10 cache"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = plan_of(
            "services:
  web:
    image: busybox
    dns: dns.example
    extra_hosts: [\"db:nope\"]
",
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "app.yml: services.web.dns: invalid value \"dns.example\": dns.example is not an ip address",
                "app.yml: services.web.extra_hosts: invalid value \"db:nope\": bad format for add-host: \"db:nope\": invalid IP address \"nope\"",
            ]
        );
    }
}
