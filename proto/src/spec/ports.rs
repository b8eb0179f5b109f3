//! Published ports: Docker's `--publish` short syntax
//! (`[published:]target[/protocol]`, ranges `8080-8081:80-81`) and long
//! syntax (`mode=host,target=80,published=8080,protocol=udp`).

use crate::types::port_config::{Protocol, PublishMode};
use crate::types::PortConfig;

use super::units::parse_uint;
use super::{csv_fields, ValueError};

/// One `--publish` value as the port configs it stands for (a range gives
/// one per port). Refusals use Docker's words (`invalid containerPort: abc`).
pub fn parse_publish(value: &str) -> Result<Vec<PortConfig>, ValueError> {
    if is_long_syntax(value) {
        parse_long(value).map(|p| vec![p])
    } else {
        parse_short(value)
    }
}

/// Docker's test for the long syntax: some `word=word` in the value.
fn is_long_syntax(value: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = value.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        c == '=' && i > 0 && word(chars[i - 1]) && chars.get(i + 1).is_some_and(|&n| word(n))
    })
}

/// `tcp`, `udp` or `sctp`.
fn parse_protocol(value: &str) -> Option<Protocol> {
    match value {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// `ingress` or `host`.
fn parse_publish_mode(value: &str) -> Option<PublishMode> {
    match value {
        "ingress" => Some(PublishMode::Ingress),
        "host" => Some(PublishMode::Host),
        _ => None,
    }
}

/// A port number as Go's `strconv.ParseUint(v, 10, 16)` reads it.
fn parse_port_number(value: &str) -> Result<u32, ValueError> {
    let n = parse_uint(value)?;
    if n > u64::from(u16::MAX) {
        return Err(ValueError(format!(
            "strconv.ParseUint: parsing {value:?}: value out of range"
        )));
    }
    Ok(n as u32)
}

fn parse_long(value: &str) -> Result<PortConfig, ValueError> {
    let mut port = PortConfig::default();
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.to_ascii_lowercase(), v),
            _ => return Err(ValueError(format!("invalid field: {field}"))),
        };
        match key.as_str() {
            "protocol" => {
                let protocol = parse_protocol(val)
                    .ok_or_else(|| ValueError(format!("invalid protocol value '{val}'")))?;
                port.protocol = protocol as i32;
            }
            "mode" => {
                let mode = parse_publish_mode(val).ok_or_else(|| {
                    ValueError(format!(
                        "invalid publish mode value ({val}): must be either 'ingress' or 'host'"
                    ))
                })?;
                port.publish_mode = mode as i32;
            }
            "target" => port.target_port = parse_port_number(val)?,
            "published" => port.published_port = parse_port_number(val)?,
            _ => return Err(ValueError(format!("invalid field key: {key}"))),
        }
    }
    if port.target_port == 0 {
        return Err(ValueError::new("missing mandatory field 'target'"));
    }
    Ok(port)
}

/// Docker's `nat.ParsePortRange`: `80` or `8080-8090`.
fn parse_port_range(value: &str) -> Option<(u32, u32)> {
    let (start, end) = match value.split_once('-') {
        Some((s, e)) => (parse_port_number(s).ok()?, parse_port_number(e).ok()?),
        None => {
            let p = parse_port_number(value).ok()?;
            (p, p)
        }
    };
    (end >= start).then_some((start, end))
}

fn parse_short(value: &str) -> Result<Vec<PortConfig>, ValueError> {
    // [ip:][published:]target[/protocol]
    let parts: Vec<&str> = value.split(':').collect();
    let (ip, published, target) = match parts.as_slice() {
        [t] => ("", "", *t),
        [p, t] => ("", *p, *t),
        [ip @ .., p, t] => (&value[..ip.join(":").len()], *p, *t),
        [] => ("", "", ""),
    };
    let (target, protocol) = match target.split_once('/') {
        Some((t, p)) if !p.is_empty() => (t, p.to_ascii_lowercase()),
        Some((t, _)) => (t, "tcp".to_string()),
        None => (target, "tcp".to_string()),
    };
    if target.is_empty() {
        return Err(ValueError(format!("no port specified: {value}<empty>")));
    }
    let (t_start, t_end) = parse_port_range(target)
        .filter(|(s, _)| *s > 0)
        .ok_or_else(|| ValueError(format!("invalid containerPort: {target}")))?;
    let published_range = if published.is_empty() {
        None
    } else {
        Some(
            parse_port_range(published)
                .ok_or_else(|| ValueError(format!("invalid hostPort: {published}")))?,
        )
    };
    if let Some((p_start, p_end)) = published_range {
        if p_end - p_start != t_end - t_start {
            return Err(ValueError(format!(
                "invalid ranges specified for container and host Ports: {target} and {published}"
            )));
        }
    }
    let protocol = parse_protocol(&protocol)
        .ok_or_else(|| ValueError(format!("invalid proto: {protocol}")))?;
    if !ip.is_empty() {
        return Err(ValueError::new("hostip is not supported"));
    }
    Ok((0..=t_end - t_start)
        .map(|i| PortConfig {
            name: String::new(),
            protocol: protocol as i32,
            target_port: t_start + i,
            published_port: published_range.map_or(0, |(p, _)| p + i),
            publish_mode: PublishMode::Ingress as i32,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(published: u32, target: u32, protocol: Protocol, mode: PublishMode) -> PortConfig {
        PortConfig {
            name: String::new(),
            protocol: protocol as i32,
            target_port: target,
            published_port: published,
            publish_mode: mode as i32,
        }
    }

    fn err(value: &str) -> String {
        match parse_publish(value) {
            Ok(p) => panic!("{value}: expected an error, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn short_syntax() {
        assert_eq!(
            parse_publish("8080:80"),
            Ok(vec![port(8080, 80, Protocol::Tcp, PublishMode::Ingress)])
        );
        assert_eq!(
            parse_publish("8080:80/udp"),
            Ok(vec![port(8080, 80, Protocol::Udp, PublishMode::Ingress)])
        );
        assert_eq!(
            parse_publish("80"),
            Ok(vec![port(0, 80, Protocol::Tcp, PublishMode::Ingress)])
        );
        assert_eq!(
            parse_publish("8080-8081:80-81/sctp"),
            Ok(vec![
                port(8080, 80, Protocol::Sctp, PublishMode::Ingress),
                port(8081, 81, Protocol::Sctp, PublishMode::Ingress)
            ])
        );
    }

    #[test]
    fn long_syntax() {
        assert_eq!(
            parse_publish("mode=host,target=80,published=8080,protocol=tcp"),
            Ok(vec![port(8080, 80, Protocol::Tcp, PublishMode::Host)])
        );
        assert_eq!(
            parse_publish("target=53,protocol=udp"),
            Ok(vec![port(0, 53, Protocol::Udp, PublishMode::Ingress)])
        );
    }

    #[test]
    fn refusals_use_dockers_words() {
        assert_eq!(err("abc"), "invalid containerPort: abc");
        assert_eq!(err("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(err("x:80"), "invalid hostPort: x");
        assert_eq!(err("8080:80/icmp"), "invalid proto: icmp");
        assert_eq!(err("70000:80"), "invalid hostPort: 70000");
        assert_eq!(
            err("8080-8082:80-81"),
            "invalid ranges specified for container and host Ports: 80-81 and 8080-8082"
        );
        assert_eq!(err("127.0.0.1:8080:80"), "hostip is not supported");
        assert_eq!(err("published=8080"), "missing mandatory field 'target'");
        assert_eq!(err("target=80,colour=red"), "invalid field key: colour");
        assert_eq!(
            err("target=80,protocol=icmp"),
            "invalid protocol value 'icmp'"
        );
        assert_eq!(
            err("target=80,mode=bridge"),
            "invalid publish mode value (bridge): must be either 'ingress' or 'host'"
        );
        assert_eq!(
            err("target=x1"),
            "strconv.ParseUint: parsing \"x1\": invalid syntax"
        );
        assert_eq!(err("target=80,nonsense"), "invalid field: nonsense");
    }
}
