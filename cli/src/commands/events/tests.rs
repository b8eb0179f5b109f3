use std::collections::HashMap;

use rswarm_proto::control::{Event, EventActor};

use super::render::{json_value, line, Output};
use super::time::parse_timestamp;
use super::{parse_filters, request, EventsArgs, Position};

const NOW: i64 = 1_796_531_460_000_000_000; // 2026-12-06T04:31:00Z

#[test]
fn durations_are_before_now_and_may_be_compound_or_negative() {
    assert_eq!(parse_timestamp("10m", NOW), Ok(NOW - 600_000_000_000));
    assert_eq!(parse_timestamp("1h30m", NOW), Ok(NOW - 5_400_000_000_000));
    assert_eq!(parse_timestamp("1.5s", NOW), Ok(NOW - 1_500_000_000));
    assert_eq!(parse_timestamp("-5s", NOW), Ok(NOW + 5_000_000_000));
}

#[test]
fn rfc3339_times_dates_and_unix_seconds() {
    assert_eq!(parse_timestamp("2026-12-06T04:31:00Z", 0), Ok(NOW));
    assert_eq!(
        parse_timestamp("2026-12-06T04:31:00.25Z", 0),
        Ok(NOW + 250_000_000)
    );
    assert_eq!(parse_timestamp("2026-12-06T05:31:00+01:00", 0), Ok(NOW));
    assert_eq!(parse_timestamp("1796531460", 0), Ok(NOW));
    assert_eq!(parse_timestamp("1796531460.5", 0), Ok(NOW + 500_000_000));
    assert_eq!(parse_timestamp("0", NOW), Ok(0));
    // A date and a time without zone are local times.
    let local = chrono::NaiveDate::from_ymd_opt(2026, 12, 6)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|n| {
            use chrono::TimeZone;
            chrono::Local.from_local_datetime(&n).earliest()
        })
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap();
    assert_eq!(parse_timestamp("2026-12-06", 0), Ok(local));
    assert_eq!(parse_timestamp("2026-12-06T00:00:00", 0), Ok(local));
}

#[test]
fn bad_times_are_refused_in_dockers_words() {
    for bad in [
        "yesterday",
        "10x",
        "2026-13-01",
        "1.2.3",
        "",
        "1796531460.1234567890",
    ] {
        assert_eq!(
            parse_timestamp(bad, NOW),
            Err(format!(
                "failed to parse value as time or duration: {bad:?}"
            )),
            "{bad}"
        );
    }
    let long = "9".repeat(500);
    assert!(parse_timestamp(&long, NOW).unwrap_err().len() < 120);
}

#[test]
fn filters_need_name_equals_value() {
    let f = parse_filters(&["Type=node".into(), "service= web".into()]).unwrap();
    assert_eq!((f[0].key.as_str(), f[0].value.as_str()), ("type", "node"));
    assert_eq!(f[1].value, "web");
    let err = parse_filters(&["node".into()]).unwrap_err().to_string();
    assert_eq!(err, "bad format of filter (expected name=value)");
    let many: Vec<String> = (0..65).map(|_| "type=node".to_string()).collect();
    assert!(parse_filters(&many).is_err());
}

#[test]
fn the_request_carries_since_and_until() {
    let args = EventsArgs {
        filter: vec!["type=service".into()],
        format: None,
        since: Some("1m".into()),
        until: Some("1796531460".into()),
    };
    let r = request(&args, NOW).unwrap();
    assert_eq!(r.since_ns, Some(NOW - 60_000_000_000));
    assert_eq!(r.until_ns, Some(NOW));
    assert_eq!(r.filters.len(), 1);
    let bad = EventsArgs {
        since: Some("later".into()),
        ..args
    };
    assert_eq!(
        request(&bad, NOW).unwrap_err().to_string(),
        "failed to parse value as time or duration: \"later\""
    );
}

fn event() -> Event {
    Event {
        r#type: "service".into(),
        action: "create".into(),
        actor: Some(EventActor {
            id: "abc".into(),
            attributes: HashMap::from([
                ("name".to_string(), "web".to_string()),
                ("image.new".to_string(), "a:2".to_string()),
            ]),
        }),
        time_nano: NOW,
        index: 7,
    }
}

#[test]
fn the_line_is_dockers() {
    // The test machines run in UTC.
    if chrono::Local::now().offset().to_string() != "+00:00" {
        return;
    }
    assert_eq!(
        line(&event()),
        "2026-12-06T04:31:00.000000000Z service create abc (image.new=a:2, name=web)"
    );
}

#[test]
fn json_and_templates_see_dockers_message_shape() {
    let v = json_value(&event());
    assert_eq!(v["Type"], "service");
    assert_eq!(v["Actor"]["Attributes"]["name"], "web");
    assert_eq!(v["scope"], "swarm");
    assert_eq!(v["time"], NOW / 1_000_000_000);
    let out = Output::parse(Some("json"))
        .unwrap()
        .render(&event())
        .unwrap();
    let back: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(back["timeNano"], NOW);
    let out = Output::parse(Some("{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"))
        .unwrap()
        .render(&event())
        .unwrap();
    assert_eq!(out, "service create web\n");
    assert!(Output::parse(Some("{{.Type")).is_err());
}

#[test]
fn the_position_counts_events_at_one_index() {
    let mut p = Position::default();
    p.saw(5, 1);
    p.saw(5, 2);
    p.saw(6, 3);
    assert_eq!((p.index, p.at_index, p.time_nano), (6, 1, 3));
}
