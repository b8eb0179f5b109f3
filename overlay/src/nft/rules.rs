//! Rendering: [`VipService`]s and [`PublishedPort`]s to an nftables JSON
//! transaction (typed with the `nftables` crate's schema). No I/O here.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Map, Meta, MetaKey, NamedExpression,
    NgMode, Numgen, Payload, PayloadBase, PayloadField, PayloadRaw, Prefix, SetItem, Verdict, CT,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Mangle, Match, Operator, Reject, RejectType, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};

use super::{Backend, NftError, Proto, PublishedPort, VipService};

/// The table of service VIPs in a task's namespace (family `ip`).
pub const VIP_TABLE: &str = "rswarm";
/// The table of the routing mesh in a node's namespace (family `ip`).
pub const MESH_TABLE: &str = "rswarm_mesh";
/// The table of the gateway bridge's egress NAT in a node's namespace
/// (family `ip`).
pub const GATEWAY_TABLE: &str = "rswarm_gw";
/// The table in a node's namespace that drops VXLAN packets of encrypted
/// networks which did not come out of the WireGuard tunnel (family `ip`).
pub const ENCRYPTED_TABLE: &str = "rswarm_wg";
/// The conntrack mark bit set on connections the mesh masquerades (OR-ed
/// into the mark, other bits untouched).
pub const MESH_CT_MARK: u32 = 0x0200_0000;

const FAMILY: NfFamily = NfFamily::IP;

/// A table being built: `add table; delete table; add table; ...` in one batch.
struct TableTx {
    name: &'static str,
    batch: Batch<'static>,
}

impl TableTx {
    fn replace(name: &'static str) -> Self {
        let mut batch = Batch::new();
        drop_table(&mut batch, name);
        batch.add(NfListObject::Table(table(name)));
        TableTx { name, batch }
    }

    fn base_chain(&mut self, name: &str, kind: NfChainType, hook: NfHook, prio: i32) {
        self.batch.add(NfListObject::Chain(Chain {
            family: FAMILY,
            table: self.name.into(),
            name: name.to_string().into(),
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        }));
    }

    fn chain(&mut self, name: &str) {
        self.batch.add(NfListObject::Chain(Chain {
            family: FAMILY,
            table: self.name.into(),
            name: name.to_string().into(),
            ..Chain::default()
        }));
    }

    fn rule(&mut self, chain: &str, expr: Vec<Statement<'static>>, comment: Option<String>) {
        self.batch.add(NfListObject::Rule(Rule {
            family: FAMILY,
            table: self.name.into(),
            chain: chain.to_string().into(),
            expr: expr.into(),
            comment: comment.map(Cow::Owned),
            ..Rule::default()
        }));
    }

    fn finish(self) -> Nftables<'static> {
        self.batch.to_nftables()
    }
}

fn table(name: &'static str) -> Table<'static> {
    Table {
        family: FAMILY,
        name: name.into(),
        handle: None,
    }
}

/// `add table` then `delete table`: gone afterwards, whether it existed or not.
fn drop_table(batch: &mut Batch<'static>, name: &'static str) {
    batch.add(NfListObject::Table(table(name)));
    batch.delete(NfListObject::Table(table(name)));
}

/// A transaction deleting `names` (missing ones are fine).
pub(crate) fn remove_tables(names: &[&'static str]) -> Nftables<'static> {
    let mut batch = Batch::new();
    for name in names {
        drop_table(&mut batch, name);
    }
    batch.to_nftables()
}

// ---- expression helpers ----------------------------------------------------

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    matches(left, Operator::EQ, right)
}

fn ip(addr: Ipv4Addr) -> Expression<'static> {
    Expression::String(addr.to_string().into())
}

fn num(n: u32) -> Expression<'static> {
    Expression::Number(n)
}

fn anon_set(items: impl IntoIterator<Item = Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        items.into_iter().map(SetItem::Element).collect(),
    ))
}

/// `tcp dport P` or `tcp dport { P1, P2 }`.
fn dport_is(proto: Proto, ports: &BTreeSet<u16>) -> Statement<'static> {
    let right = if ports.len() == 1 {
        num(u32::from(*ports.iter().next().unwrap_or(&0)))
    } else {
        anon_set(ports.iter().map(|p| num(u32::from(*p))))
    };
    eq(payload(proto.as_str(), "dport"), right)
}

fn l4proto_is(name: &'static str) -> Statement<'static> {
    eq(
        Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::L4proto,
        })),
        Expression::String(name.into()),
    )
}

fn ct_mark() -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: "mark".into(),
        family: None,
        dir: None,
    }))
}

/// `ct mark set ct mark | MESH_CT_MARK`.
fn set_mesh_mark() -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: ct_mark(),
        value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
            ct_mark(),
            num(MESH_CT_MARK),
        ]))),
    })
}

/// `ct mark & MESH_CT_MARK == MESH_CT_MARK`.
fn has_mesh_mark() -> Statement<'static> {
    eq(
        Expression::BinaryOperation(Box::new(BinaryOperation::AND(ct_mark(), num(MESH_CT_MARK)))),
        num(MESH_CT_MARK),
    )
}

/// `fib daddr type local`: addressed to one of this namespace's addresses.
fn daddr_is_local() -> Statement<'static> {
    eq(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        Expression::String("local".into()),
    )
}

fn loopback_net() -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(ip(Ipv4Addr::new(127, 0, 0, 0))),
        len: 8,
    }))
}

/// The backends, de-duplicated, first occurrence kept.
fn unique(backends: &[Backend]) -> Vec<Ipv4Addr> {
    let mut seen = HashSet::new();
    backends
        .iter()
        .map(|b| b.ip)
        .filter(|ip| seen.insert(*ip))
        .collect()
}

/// `dnat to <one of backends>[:port]`: the address itself for one backend,
/// `numgen random mod N map { 0 : a, 1 : b, ... }` for more.
fn dnat(backends: &[Ipv4Addr], port: Option<u16>) -> Statement<'static> {
    let addr = if let [only] = backends {
        ip(*only)
    } else {
        Expression::Named(NamedExpression::Map(Box::new(Map {
            key: Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: backends.len() as u32,
                offset: None,
            })),
            data: Expression::Named(NamedExpression::Set(
                backends
                    .iter()
                    .enumerate()
                    .map(|(i, b)| SetItem::Mapping(num(i as u32), ip(*b)))
                    .collect(),
            )),
        })))
    };
    Statement::DNAT(Some(NAT {
        addr: Some(addr),
        family: None,
        port: port.map(|p| num(u32::from(p))),
        flags: None,
    }))
}

fn reject_for(proto: Proto) -> Statement<'static> {
    match proto {
        Proto::Tcp => Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
        Proto::Udp => Statement::Reject(Some(Reject::new(
            Some(RejectType::ICMP),
            Some(RejectCode::PortUnreach),
        ))),
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> NftError {
    NftError::Invalid {
        what,
        reason: reason.into(),
    }
}

// ---- task VIPs ---------------------------------------------------------------

/// The chain of one VIP: `svc_10_50_0_100`.
fn svc_chain(vip: Ipv4Addr) -> String {
    let o = vip.octets();
    format!("svc_{}_{}_{}_{}", o[0], o[1], o[2], o[3])
}

/// The transaction that replaces table `ip rswarm` with `services`' VIPs.
pub(crate) fn task_vips(services: &[VipService]) -> Result<Nftables<'static>, NftError> {
    let mut vips = BTreeSet::new();
    for s in services {
        if !vips.insert(s.vip) {
            return Err(invalid(
                "VIP services",
                format!("VIP {} is given twice", s.vip),
            ));
        }
        if let Some((proto, _)) = s.ports.iter().find(|(_, port)| *port == 0) {
            return Err(invalid(
                "VIP services",
                format!("VIP {}: {} port 0", s.vip, proto.as_str()),
            ));
        }
    }
    if services.is_empty() {
        return Ok(remove_tables(&[VIP_TABLE]));
    }

    let mut tx = TableTx::replace(VIP_TABLE);
    tx.base_chain("vip_nat", NfChainType::NAT, NfHook::Output, -100);
    tx.base_chain("vip_reject", NfChainType::Filter, NfHook::Output, 0);

    let mut dispatch = Vec::new();
    for s in services {
        let backends = unique(&s.backends);
        if backends.is_empty() {
            continue;
        }
        let chain = svc_chain(s.vip);
        tx.chain(&chain);
        if s.ports.is_empty() {
            tx.rule(
                &chain,
                vec![dnat(&backends, None)],
                Some(format!("vip {} all ports", s.vip)),
            );
        } else {
            let mut by_proto: BTreeMap<Proto, BTreeSet<u16>> = BTreeMap::new();
            for (proto, port) in &s.ports {
                by_proto.entry(*proto).or_default().insert(*port);
            }
            for (proto, ports) in by_proto {
                tx.rule(
                    &chain,
                    vec![dport_is(proto, &ports), dnat(&backends, None)],
                    Some(format!("vip {} {}", s.vip, proto.as_str())),
                );
            }
        }
        dispatch.push(SetItem::Mapping(
            ip(s.vip),
            Expression::Verdict(Verdict::Goto(JumpTarget {
                target: chain.into(),
            })),
        ));
    }
    if !dispatch.is_empty() {
        tx.rule(
            "vip_nat",
            vec![Statement::VerdictMap(nftables::stmt::VerdictMap {
                key: payload("ip", "daddr"),
                data: Expression::Named(NamedExpression::Set(dispatch)),
            })],
            None,
        );
    }

    // Whatever is still addressed to a VIP here was not translated: refuse it.
    let all_vips = || anon_set(vips.iter().map(|v| ip(*v)));
    tx.rule(
        "vip_reject",
        vec![
            eq(payload("ip", "daddr"), all_vips()),
            l4proto_is("tcp"),
            reject_for(Proto::Tcp),
        ],
        Some("VIP without backend for this port".into()),
    );
    tx.rule(
        "vip_reject",
        vec![
            eq(payload("ip", "daddr"), all_vips()),
            reject_for(Proto::Udp),
        ],
        Some("VIP without backend for this port".into()),
    );
    Ok(tx.finish())
}

// ---- routing mesh ------------------------------------------------------------

/// A valid interface name (it ends up in a sysctl path and a rule).
pub(crate) fn check_iface(name: &str) -> Result<(), NftError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid("ingress interface", format!("{name:?}")))
    }
}

/// Whether a host-mode port has local backends: they sit on the gateway
/// bridge, which then needs `route_localnet` for connections from 127.0.0.1.
pub(crate) fn host_mode_backends(ports: &[PublishedPort]) -> bool {
    ports.iter().any(|p| p.host_mode && !p.backends.is_empty())
}

/// The transaction that replaces table `ip rswarm_mesh` with `ports`.
pub(crate) fn node_mesh(
    ports: &[PublishedPort],
    ingress_iface: Option<&str>,
) -> Result<Nftables<'static>, NftError> {
    if let Some(iface) = ingress_iface {
        check_iface(iface)?;
    }
    let mut seen = HashSet::new();
    for p in ports {
        if p.published == 0 || p.target == 0 {
            return Err(invalid(
                "published ports",
                format!("{} {}:{}: port 0", p.proto.as_str(), p.published, p.target),
            ));
        }
        if !seen.insert((p.proto, p.published)) {
            return Err(invalid(
                "published ports",
                format!("{} port {} is given twice", p.proto.as_str(), p.published),
            ));
        }
    }
    if ports.is_empty() {
        return Ok(remove_tables(&[MESH_TABLE]));
    }

    let mut tx = TableTx::replace(MESH_TABLE);
    tx.base_chain("prerouting", NfChainType::NAT, NfHook::Prerouting, -100);
    tx.base_chain("output", NfChainType::NAT, NfHook::Output, -100);
    tx.chain("published");
    tx.base_chain("postrouting", NfChainType::NAT, NfHook::Postrouting, 100);
    tx.base_chain("input_reject", NfChainType::Filter, NfHook::Input, 0);
    tx.base_chain(
        "localnet_guard",
        NfChainType::Filter,
        NfHook::Prerouting,
        -300,
    );

    let to_published = || {
        Statement::Jump(JumpTarget {
            target: "published".into(),
        })
    };
    tx.rule("prerouting", vec![daddr_is_local(), to_published()], None);
    tx.rule("output", vec![daddr_is_local(), to_published()], None);

    for p in ports {
        let port = BTreeSet::from([p.published]);
        let backends = unique(&p.backends);
        let mode = if p.host_mode { "host" } else { "ingress" };
        let comment = format!("{mode} {} {}->{}", p.proto.as_str(), p.published, p.target);
        if backends.is_empty() {
            tx.rule(
                "input_reject",
                vec![dport_is(p.proto, &port), reject_for(p.proto)],
                Some(format!("{comment}: no backends")),
            );
            continue;
        }
        if p.host_mode {
            // From 127.0.0.1 the source cannot be kept: masquerade those only.
            tx.rule(
                "published",
                vec![
                    eq(payload("ip", "saddr"), loopback_net()),
                    dport_is(p.proto, &port),
                    set_mesh_mark(),
                ],
                Some(format!("{comment} from loopback")),
            );
            tx.rule(
                "published",
                vec![dport_is(p.proto, &port), dnat(&backends, Some(p.target))],
                Some(comment),
            );
        } else {
            tx.rule(
                "published",
                vec![
                    dport_is(p.proto, &port),
                    set_mesh_mark(),
                    dnat(&backends, Some(p.target)),
                ],
                Some(comment),
            );
        }
    }

    tx.rule(
        "postrouting",
        vec![has_mesh_mark(), Statement::Masquerade(None)],
        None,
    );

    let iifname = Expression::Named(NamedExpression::Meta(Meta {
        key: MetaKey::Iifname,
    }));
    let guarded: Vec<Statement> = match ingress_iface {
        Some(iface) => {
            let mut v = vec![eq(
                iifname.clone(),
                Expression::String(iface.to_string().into()),
            )];
            if host_mode_backends(ports) {
                v.push(eq(
                    iifname,
                    Expression::String(crate::GATEWAY_BRIDGE.into()),
                ));
            }
            v
        }
        None => vec![matches(
            iifname,
            Operator::NEQ,
            Expression::String("lo".into()),
        )],
    };
    for from in guarded {
        tx.rule(
            "localnet_guard",
            vec![
                from,
                eq(payload("ip", "daddr"), loopback_net()),
                Statement::Drop(None),
            ],
            Some("martians that route_localnet lets in".into()),
        );
    }
    Ok(tx.finish())
}

// ---- gateway bridge egress -----------------------------------------------------

/// The transaction that replaces table `ip rswarm_gw`: masquerade what the
/// tasks on the gateway bridge (`subnet/prefix`, on `bridge`) send anywhere
/// but back onto that bridge, and drop what the node would forward from the
/// bridge back onto it (task to task).
pub(crate) fn gateway_nat(
    subnet: Ipv4Addr,
    prefix: u8,
    bridge: &str,
) -> Result<Nftables<'static>, NftError> {
    check_iface(bridge).map_err(|_| invalid("gateway bridge", format!("{bridge:?}")))?;
    if prefix > 32 {
        return Err(invalid("gateway subnet", format!("{subnet}/{prefix}")));
    }
    let mut tx = TableTx::replace(GATEWAY_TABLE);
    tx.base_chain("postrouting", NfChainType::NAT, NfHook::Postrouting, 100);
    let source = Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(ip(subnet)),
        len: u32::from(prefix),
    }));
    let oifname = Expression::Named(NamedExpression::Meta(Meta {
        key: MetaKey::Oifname,
    }));
    tx.rule(
        "postrouting",
        vec![
            eq(payload("ip", "saddr"), source),
            matches(
                oifname,
                Operator::NEQ,
                Expression::String(bridge.to_string().into()),
            ),
            Statement::Masquerade(None),
        ],
        Some("egress of tasks on the gateway bridge".into()),
    );
    // Tasks never reach each other through the node either (a task that
    // routes another task's gateway address via 172.18.0.1): Docker's
    // `-i docker_gwbridge -o docker_gwbridge -j DROP`.
    tx.base_chain("forward", NfChainType::Filter, NfHook::Forward, 0);
    let iifname = Expression::Named(NamedExpression::Meta(Meta {
        key: MetaKey::Iifname,
    }));
    let oifname = Expression::Named(NamedExpression::Meta(Meta {
        key: MetaKey::Oifname,
    }));
    tx.rule(
        "forward",
        vec![
            eq(iifname, Expression::String(bridge.to_string().into())),
            eq(oifname, Expression::String(bridge.to_string().into())),
            Statement::Drop(None),
        ],
        Some("no task-to-task traffic through the gateway bridge".into()),
    );
    Ok(tx.finish())
}

// ---- encrypted networks ----------------------------------------------------------

/// The transaction that replaces table `ip rswarm_wg` (or only deletes it
/// when `vnis` is empty): in the `input` hook, a VXLAN packet (UDP
/// `vxlan_port`) whose VNI (`@th,96,24`) is one of `vnis` is dropped unless
/// its source is a tunnel address (`pool`) reachable back through the
/// interface it came in on (`fib saddr . iif oif`, i.e. it came out of the
/// WireGuard interface): nobody on the wire can inject clear VXLAN frames
/// into an encrypted network (what Docker's `u32` VNI match does for IPsec).
pub(crate) fn encrypted_guard(
    vnis: &BTreeSet<u32>,
    vxlan_port: u16,
    pool: (Ipv4Addr, u8),
) -> Nftables<'static> {
    if vnis.is_empty() {
        return remove_tables(&[ENCRYPTED_TABLE]);
    }
    let mut tx = TableTx::replace(ENCRYPTED_TABLE);
    tx.base_chain("input", NfChainType::Filter, NfHook::Input, -10);
    let vxlan_of_encrypted = || {
        vec![
            eq(payload("udp", "dport"), num(u32::from(vxlan_port))),
            eq(
                Expression::Named(NamedExpression::Payload(Payload::PayloadRaw(PayloadRaw {
                    base: PayloadBase::TH,
                    offset: 96,
                    len: 24,
                }))),
                anon_set(vnis.iter().map(|v| num(*v))),
            ),
        ]
    };
    let mut not_from_pool = vxlan_of_encrypted();
    not_from_pool.push(matches(
        payload("ip", "saddr"),
        Operator::NEQ,
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(ip(pool.0)),
            len: u32::from(pool.1),
        })),
    ));
    not_from_pool.push(Statement::Drop(None));
    tx.rule(
        "input",
        not_from_pool,
        Some("encrypted VXLAN from outside the tunnel pool".into()),
    );
    let mut not_via_tunnel = vxlan_of_encrypted();
    not_via_tunnel.push(eq(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Oif,
            flags: HashSet::from([FibFlag::Saddr, FibFlag::Iif]),
        })),
        Expression::Boolean(false),
    ));
    not_via_tunnel.push(Statement::Drop(None));
    tx.rule(
        "input",
        not_via_tunnel,
        Some("encrypted VXLAN that did not come out of the tunnel".into()),
    );
    tx.finish()
}
