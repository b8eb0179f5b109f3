//! The record table: the cluster's names, indexed for lookups from one task's
//! point of view.
//!
//! [`Table::build`] turns a [`Records`] snapshot into a map from lower-case
//! names (without the trailing dot) to per-network entries; [`Table::resolve`]
//! filters those by the asking task's [`View`] (networks it is on, stack it is
//! in). The table is immutable: `set_records` builds a new one and swaps it in.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use super::{Records, View};

/// One way a name resolves on one network.
#[derive(Debug, Clone)]
struct Entry {
    /// The network the addresses are on; only tasks on it see the entry.
    network: String,
    /// `Some(stack)` for a stack-unqualified name: only tasks of that stack see it.
    stack_only: Option<String>,
    /// The addresses; empty when the name exists but has no healthy task now.
    addrs: Vec<Ipv4Addr>,
}

/// A reverse (PTR) entry: an address on a network names a task or a service.
#[derive(Debug, Clone)]
struct PtrEntry {
    network: String,
    name: String,
}

/// What a lookup in the table found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The name is a cluster name visible to the asker (the list may be empty).
    Addrs(Vec<Ipv4Addr>),
    /// The name is in the cluster's namespace but not known: NXDOMAIN at once.
    NxDomain,
    /// Not a cluster name: forward it.
    Unknown,
}

/// The immutable, indexed record set.
#[derive(Debug, Default)]
pub(crate) struct Table {
    names: HashMap<String, Vec<Entry>>,
    ptr: HashMap<Ipv4Addr, Vec<PtrEntry>>,
    /// Lower-case service names, qualified and stack-unqualified, for telling
    /// `<service>.<slot>.<taskid>` look-alikes apart from outside names.
    service_labels: HashSet<String>,
}

/// Lower-cases a name and drops one trailing dot.
pub(crate) fn normalize(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

/// The stack-unqualified form of `name` (`web` for `mystack_web` in `mystack`).
fn unqualified(name: &str, stack: Option<&str>) -> Option<String> {
    let stack = stack?;
    if stack.is_empty() {
        return None;
    }
    let prefix = format!("{}_", stack.to_ascii_lowercase());
    let short = name.strip_prefix(&prefix)?;
    (!short.is_empty()).then(|| short.to_string())
}

impl Table {
    /// Indexes a record snapshot.
    pub(crate) fn build(records: &Records) -> Table {
        let mut table = Table::default();

        // Healthy task addresses per (lower-case service name, network).
        let mut healthy: HashMap<(String, &str), Vec<Ipv4Addr>> = HashMap::new();
        for t in &records.tasks {
            let service = normalize(&t.service_name);
            let addrs = healthy
                .entry((service.clone(), t.network_id.as_str()))
                .or_default();
            if t.healthy && !addrs.contains(&t.addr) {
                addrs.push(t.addr);
            }

            // The task's own name resolves whether or not it is healthy: it
            // names one container, not a load-balanced group.
            table.add(&t.task_name, &t.network_id, None, vec![t.addr]);
            table.add_ptr(t.addr, &t.network_id, &t.task_name);
            // Network aliases of a task behave like a group: healthy only.
            let alias_addrs = if t.healthy { vec![t.addr] } else { vec![] };
            for alias in &t.aliases {
                table.add(alias, &t.network_id, None, alias_addrs.clone());
            }
        }

        // tasks.<service> (and tasks.<short> within the stack) for every
        // service that has tasks, with or without a service record.
        let mut seen_tasks_names: HashSet<(String, &str)> = HashSet::new();
        for t in &records.tasks {
            let service = normalize(&t.service_name);
            if !seen_tasks_names.insert((service.clone(), t.network_id.as_str())) {
                continue;
            }
            let addrs = healthy
                .get(&(service.clone(), t.network_id.as_str()))
                .cloned()
                .unwrap_or_default();
            table.add(
                &format!("tasks.{service}"),
                &t.network_id,
                None,
                addrs.clone(),
            );
            table.service_labels.insert(service.clone());
            if let Some(short) = unqualified(&service, t.stack.as_deref()) {
                table.add(
                    &format!("tasks.{short}"),
                    &t.network_id,
                    t.stack.clone(),
                    addrs,
                );
                table.service_labels.insert(short);
            }
        }

        for s in &records.services {
            let name = normalize(&s.name);
            let tasks = healthy
                .get(&(name.clone(), s.network_id.as_str()))
                .cloned()
                .unwrap_or_default();
            let addrs = match s.vip {
                Some(vip) => {
                    table.add_ptr(vip, &s.network_id, &s.name);
                    vec![vip]
                }
                None => tasks.clone(),
            };
            let short = unqualified(&name, s.stack.as_deref());

            table.add(&name, &s.network_id, None, addrs.clone());
            table.add(&format!("tasks.{name}"), &s.network_id, None, tasks.clone());
            table.service_labels.insert(name.clone());
            if let Some(short) = &short {
                table.add(short, &s.network_id, s.stack.clone(), addrs.clone());
                table.add(
                    &format!("tasks.{short}"),
                    &s.network_id,
                    s.stack.clone(),
                    tasks.clone(),
                );
                table.service_labels.insert(short.clone());
            }
            for alias in &s.aliases {
                table.add(alias, &s.network_id, None, addrs.clone());
                table.add(
                    &format!("tasks.{alias}"),
                    &s.network_id,
                    None,
                    tasks.clone(),
                );
            }
        }
        table
    }

    fn add(&mut self, name: &str, network: &str, stack_only: Option<String>, addrs: Vec<Ipv4Addr>) {
        let key = normalize(name);
        if key.is_empty() {
            return;
        }
        let entries = self.names.entry(key).or_default();
        // Merge with an entry for the same network and visibility.
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.network == network && e.stack_only == stack_only)
        {
            for a in addrs {
                if !e.addrs.contains(&a) {
                    e.addrs.push(a);
                }
            }
            return;
        }
        entries.push(Entry {
            network: network.to_string(),
            stack_only,
            addrs,
        });
    }

    fn add_ptr(&mut self, addr: Ipv4Addr, network: &str, name: &str) {
        let name = normalize(name);
        if name.is_empty() {
            return;
        }
        self.ptr.entry(addr).or_default().push(PtrEntry {
            network: network.to_string(),
            name,
        });
    }

    /// Resolves a name (already normalized) for a task with the given view.
    ///
    /// The first of the task's networks (in the view's order) on which the
    /// name has addresses wins, as in Docker; a name that exists only with no
    /// addresses gives an empty list.
    pub(crate) fn resolve(&self, view: &View, name: &str) -> Found {
        if let Some(entries) = self.names.get(name) {
            let mut known = false;
            for net in &view.networks {
                // A stack-local name shadows a global one of the same spelling.
                let mut local: Vec<Ipv4Addr> = Vec::new();
                let mut global: Vec<Ipv4Addr> = Vec::new();
                for e in entries.iter().filter(|e| &e.network == net) {
                    let out = match &e.stack_only {
                        Some(stack) if view.stack.as_ref() == Some(stack) => &mut local,
                        Some(_) => continue,
                        None => &mut global,
                    };
                    known = true;
                    for a in &e.addrs {
                        if !out.contains(a) {
                            out.push(*a);
                        }
                    }
                }
                if !local.is_empty() {
                    return Found::Addrs(local);
                }
                if !global.is_empty() {
                    return Found::Addrs(global);
                }
            }
            if known {
                return Found::Addrs(Vec::new());
            }
        }
        if self.is_cluster_namespace(name) {
            Found::NxDomain
        } else {
            Found::Unknown
        }
    }

    /// Whether an unknown name still belongs to the cluster (answered
    /// NXDOMAIN at once instead of being forwarded): single labels,
    /// `tasks.<label>`, and `<service>.<slot>.<taskid>` shapes of a known
    /// service.
    fn is_cluster_namespace(&self, name: &str) -> bool {
        if !name.contains('.') {
            return true;
        }
        if let Some(rest) = name.strip_prefix("tasks.") {
            if !rest.contains('.') {
                return true;
            }
        }
        let labels: Vec<&str> = name.split('.').collect();
        labels.len() == 3 && self.service_labels.contains(labels[0])
    }

    /// Reverse lookup of an address for a task with the given view.
    pub(crate) fn reverse(&self, view: &View, addr: Ipv4Addr) -> Option<&str> {
        let entries = self.ptr.get(&addr)?;
        view.networks.iter().find_map(|net| {
            entries
                .iter()
                .find(|e| &e.network == net)
                .map(|e| e.name.as_str())
        })
    }
}

/// Parses `d.c.b.a.in-addr.arpa` (normalized) into `a.b.c.d`.
pub(crate) fn parse_reverse_v4(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut n = 0;
    for part in rest.split('.') {
        if n == 4 {
            return None;
        }
        octets[3 - n] = part.parse().ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{ServiceRecord, TaskRecord};

    fn task(svc: &str, stack: Option<&str>, net: &str, n: u8, healthy: bool) -> TaskRecord {
        TaskRecord {
            service_name: svc.into(),
            stack: stack.map(Into::into),
            network_id: net.into(),
            task_name: format!("{svc}.{n}.task{n}"),
            addr: Ipv4Addr::new(10, 0, 0, n),
            aliases: vec![],
            healthy,
        }
    }

    fn view(nets: &[&str], stack: Option<&str>) -> View {
        View {
            networks: nets.iter().map(|s| s.to_string()).collect(),
            stack: stack.map(Into::into),
            upstreams: vec![],
        }
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("Web.Example."), "web.example");
        assert_eq!(normalize("web"), "web");
    }

    #[test]
    fn reverse_names_parse() {
        assert_eq!(
            parse_reverse_v4("4.3.2.10.in-addr.arpa"),
            Some(Ipv4Addr::new(10, 2, 3, 4))
        );
        assert_eq!(parse_reverse_v4("3.2.10.in-addr.arpa"), None);
        assert_eq!(parse_reverse_v4("5.4.3.2.10.in-addr.arpa"), None);
        assert_eq!(parse_reverse_v4("x.3.2.10.in-addr.arpa"), None);
    }

    #[test]
    fn stack_and_cluster_namespace() {
        let records = Records {
            services: vec![ServiceRecord {
                name: "st_web".into(),
                stack: Some("st".into()),
                network_id: "n1".into(),
                vip: Some(Ipv4Addr::new(10, 0, 0, 100)),
                aliases: vec!["front".into()],
            }],
            tasks: vec![
                task("st_web", Some("st"), "n1", 1, true),
                task("st_web", Some("st"), "n1", 2, false),
            ],
        };
        let t = Table::build(&records);
        let vip = Found::Addrs(vec![Ipv4Addr::new(10, 0, 0, 100)]);
        assert_eq!(t.resolve(&view(&["n1"], Some("st")), "web"), vip);
        assert_eq!(t.resolve(&view(&["n1"], None), "web"), Found::NxDomain);
        assert_eq!(t.resolve(&view(&["n1"], None), "st_web"), vip);
        assert_eq!(t.resolve(&view(&["n1"], None), "front"), vip);
        assert_eq!(
            t.resolve(&view(&["n2"], Some("st")), "web"),
            Found::NxDomain
        );
        assert_eq!(
            t.resolve(&view(&["n1"], Some("st")), "tasks.web"),
            Found::Addrs(vec![Ipv4Addr::new(10, 0, 0, 1)])
        );
        // Unhealthy task keeps its own name.
        assert_eq!(
            t.resolve(&view(&["n1"], None), "st_web.2.task2"),
            Found::Addrs(vec![Ipv4Addr::new(10, 0, 0, 2)])
        );
        assert_eq!(
            t.resolve(&view(&["n1"], None), "st_web.9.nope"),
            Found::NxDomain
        );
        assert_eq!(
            t.resolve(&view(&["n1"], None), "tasks.nope"),
            Found::NxDomain
        );
        assert_eq!(
            t.resolve(&view(&["n1"], None), "example.com"),
            Found::Unknown
        );
        assert_eq!(
            t.reverse(&view(&["n1"], None), Ipv4Addr::new(10, 0, 0, 1)),
            Some("st_web.1.task1")
        );
        assert_eq!(
            t.reverse(&view(&["n2"], None), Ipv4Addr::new(10, 0, 0, 1)),
            None
        );
    }
}
