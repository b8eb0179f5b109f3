//! How `rswarm events` prints an event: Docker's line
//! (`2026-12-06T04:31:00.000000000Z service create <id> (name=web)`, the
//! time in the local zone, attributes sorted), or its JSON shape for
//! `--format json` and Go templates (`{{.Type}} {{.Actor.Attributes.name}}`).

use chrono::{DateTime, Local, Offset};
use rswarm_proto::control::Event;
use serde_json::{json, Map, Value};

use crate::format::template::Template;
use crate::format::FormatError;

/// Docker's `RFC3339NanoFixed` (`2006-01-02T15:04:05.000000000Z07:00`) in
/// the local time zone.
pub(super) fn fixed_time(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000) as u32;
    let Some(utc) = DateTime::from_timestamp(secs, nanos) else {
        return unix_nanos.to_string();
    };
    let t = utc.with_timezone(&Local);
    let zone = if t.offset().fix().local_minus_utc() == 0 {
        "Z".to_string()
    } else {
        t.format("%:z").to_string()
    };
    format!("{}.{nanos:09}{zone}", t.format("%Y-%m-%dT%H:%M:%S"))
}

fn sorted_attributes(event: &Event) -> Vec<(&str, &str)> {
    let mut attrs: Vec<(&str, &str)> = event
        .actor
        .iter()
        .flat_map(|a| a.attributes.iter())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    attrs.sort();
    attrs
}

/// Docker's default line, without the newline.
pub(super) fn line(event: &Event) -> String {
    let id = event.actor.as_ref().map_or("", |a| a.id.as_str());
    let mut out = format!(
        "{} {} {} {id}",
        fixed_time(event.time_nano),
        event.r#type,
        event.action
    );
    let attrs = sorted_attributes(event);
    if !attrs.is_empty() {
        let joined: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" ({})", joined.join(", ")));
    }
    out
}

/// Docker's `events.Message` as JSON (swarm events have no `status`,
/// `id` or `from`).
pub(super) fn json_value(event: &Event) -> Value {
    let attributes: Map<String, Value> = sorted_attributes(event)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({
        "Type": event.r#type,
        "Action": event.action,
        "Actor": {
            "ID": event.actor.as_ref().map_or("", |a| a.id.as_str()),
            "Attributes": attributes,
        },
        "scope": "swarm",
        "time": event.time_nano.div_euclid(1_000_000_000),
        "timeNano": event.time_nano,
    })
}

/// What `--format` asks for.
pub(super) enum Output {
    /// Docker's line.
    Line,
    /// A Go template (`json` is `{{json .}}`).
    Template(Template),
}

impl Output {
    pub(super) fn parse(format: Option<&str>) -> Result<Output, FormatError> {
        match format.map(str::trim).filter(|f| !f.is_empty()) {
            None => Ok(Output::Line),
            Some("json") => Ok(Output::Template(Template::parse("{{json .}}")?)),
            Some(f) => Ok(Output::Template(Template::parse(f)?)),
        }
    }

    /// One event's output, newline included.
    pub(super) fn render(&self, event: &Event) -> Result<String, FormatError> {
        match self {
            Output::Line => Ok(format!("{}\n", line(event))),
            Output::Template(t) => Ok(format!("{}\n", t.execute(&json_value(event))?)),
        }
    }
}
