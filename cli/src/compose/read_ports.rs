//! A service's `ports:` entries, short (`[IP:][PUBLISHED[-END]:]TARGET[-END][/PROTO]`)
//! or long syntax, into Compose ports.

use super::model::*;
use super::read::Reader;
use super::value::{join, Value};

/// A port, short (`[IP:][PUBLISHED[-END]:]TARGET[-END][/PROTO]`) or long.
pub(super) fn port(r: &mut Reader, path: &str, v: &Value) -> Vec<Port> {
    match v {
        Value::Map(m) => {
            r.check_keys(
                path,
                m,
                &[
                    "target",
                    "published",
                    "protocol",
                    "mode",
                    "name",
                    "app_protocol",
                ],
                &["host_ip"],
            );
            let target = m
                .get("target")
                .and_then(|v| port_number(r, &join(path, "target"), v));
            let published = m
                .get("published")
                .and_then(|v| port_number(r, &join(path, "published"), v));
            let protocol = m
                .get("protocol")
                .and_then(|v| r.choice(&join(path, "protocol"), v, &["tcp", "udp", "sctp"]))
                .unwrap_or_else(|| "tcp".into());
            let mode = m
                .get("mode")
                .and_then(|v| r.choice(&join(path, "mode"), v, &["ingress", "host"]))
                .unwrap_or_else(|| "ingress".into());
            match target {
                Some(target) => vec![Port {
                    target,
                    published,
                    protocol,
                    mode,
                }],
                None => {
                    if !m.contains_key("target") {
                        r.error(path, "missing target");
                    }
                    Vec::new()
                }
            }
        }
        Value::Int(_) | Value::Str(_) => {
            let text = v.scalar_text().unwrap_or_default();
            match short_port(&text) {
                Some(ports) => ports,
                None => {
                    r.error(path, format!("invalid port {text:?}"));
                    Vec::new()
                }
            }
        }
        other => {
            r.error(
                path,
                format!("must be a port or a mapping, not {}", other.kind()),
            );
            Vec::new()
        }
    }
}

fn port_number(r: &mut Reader, path: &str, v: &Value) -> Option<u16> {
    let n = r.uint(path, v)?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            r.error(path, format!("invalid port {n} (1-65535)"));
            None
        }
    }
}

fn short_port(text: &str) -> Option<Vec<Port>> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((s, p)) if ["tcp", "udp", "sctp"].contains(&p) => (s, p),
        Some(_) => return None,
        None => (text, "tcp"),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (published, target) = match parts.as_slice() {
        [t] => (None, *t),
        [p, t] => (Some(*p), *t),
        // A host IP cannot be honoured by the routing mesh: refused.
        _ => return None,
    };
    let range = |s: &str| -> Option<(u16, u16)> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
        (a > 0 && a <= b).then_some((a, b))
    };
    let (t0, t1) = range(target)?;
    let published = match published {
        Some(p) => Some(range(p)?),
        None => None,
    };
    if let Some((p0, p1)) = published {
        if p1 - p0 != t1 - t0 {
            return None;
        }
    }
    Some(
        (0..=(t1 - t0))
            .map(|i| Port {
                target: t0 + i,
                published: published.map(|(p0, _)| p0 + i),
                protocol: protocol.into(),
                mode: "ingress".into(),
            })
            .collect(),
    )
}
