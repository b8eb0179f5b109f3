//! A service's `deploy:` section: mode, replicas, placement, resources,
//! restart, update and rollback configs, labels, endpoint mode.

use super::model::*;
use super::read::Reader;
use super::value::{join, Value};

pub(super) fn deploy(r: &mut Reader, path: &str, v: &Value) -> Deploy {
    let mut d = Deploy::default();
    let Some(m) = r.map(path, v) else { return d };
    r.check_keys(
        path,
        m,
        &[
            "mode",
            "replicas",
            "endpoint_mode",
            "labels",
            "placement",
            "resources",
            "restart_policy",
            "update_config",
            "rollback_config",
        ],
        &[],
    );
    let at = |k: &str| join(path, k);
    d.mode = m.get("mode").and_then(|v| {
        r.choice(
            &at("mode"),
            v,
            &["replicated", "global", "replicated-job", "global-job"],
        )
    });
    d.replicas = m.get("replicas").and_then(|v| r.uint(&at("replicas"), v));
    d.endpoint_mode = m
        .get("endpoint_mode")
        .and_then(|v| r.choice(&at("endpoint_mode"), v, &["vip", "dnsrr"]));
    if let Some(v) = m.get("labels") {
        d.labels = r.string_map(&at("labels"), v);
    }
    if let Some(v) = m.get("placement") {
        let ppath = at("placement");
        if let Some(p) = r.map(&ppath, v) {
            r.check_keys(
                &ppath,
                p,
                &["constraints", "preferences", "max_replicas_per_node"],
                &[],
            );
            if let Some(c) = p.get("constraints") {
                d.constraints = r.strings(&join(&ppath, "constraints"), c);
            }
            if let Some(Value::Seq(prefs)) = p.get("preferences") {
                for (i, pref) in prefs.iter().enumerate() {
                    let ipath = format!("{ppath}.preferences[{i}]");
                    let Some(pm) = r.map(&ipath, pref) else {
                        continue;
                    };
                    r.check_keys(&ipath, pm, &["spread"], &[]);
                    if let Some(s) = pm
                        .get("spread")
                        .and_then(|v| r.string(&join(&ipath, "spread"), v))
                    {
                        d.preferences.push(s);
                    }
                }
            }
            d.max_replicas_per_node = p
                .get("max_replicas_per_node")
                .and_then(|v| r.uint(&join(&ppath, "max_replicas_per_node"), v));
        }
    }
    if let Some(v) = m.get("resources") {
        let rpath = at("resources");
        if let Some(res) = r.map(&rpath, v) {
            r.check_keys(&rpath, res, &["limits", "reservations"], &[]);
            if let Some(l) = res.get("limits") {
                d.limits = resources(r, &join(&rpath, "limits"), l, true);
            }
            if let Some(l) = res.get("reservations") {
                d.reservations = resources(r, &join(&rpath, "reservations"), l, false);
            }
        }
    }
    if let Some(v) = m.get("restart_policy") {
        let rpath = at("restart_policy");
        if let Some(p) = r.map(&rpath, v) {
            r.check_keys(
                &rpath,
                p,
                &["condition", "delay", "max_attempts", "window"],
                &[],
            );
            d.restart_policy = Some(RestartPolicy {
                condition: p.get("condition").and_then(|v| {
                    r.choice(
                        &join(&rpath, "condition"),
                        v,
                        &["none", "on-failure", "any"],
                    )
                }),
                delay: p
                    .get("delay")
                    .and_then(|v| r.string(&join(&rpath, "delay"), v)),
                max_attempts: p
                    .get("max_attempts")
                    .and_then(|v| r.uint(&join(&rpath, "max_attempts"), v)),
                window: p
                    .get("window")
                    .and_then(|v| r.string(&join(&rpath, "window"), v)),
            });
        }
    }
    if let Some(v) = m.get("update_config") {
        d.update_config = update_config(r, &at("update_config"), v);
    }
    if let Some(v) = m.get("rollback_config") {
        d.rollback_config = update_config(r, &at("rollback_config"), v);
    }
    d
}

fn resources(r: &mut Reader, path: &str, v: &Value, limits: bool) -> Resources {
    let mut out = Resources::default();
    let Some(m) = r.map(path, v) else { return out };
    let known: &[&str] = if limits {
        &["cpus", "memory", "pids"]
    } else {
        &["cpus", "memory"]
    };
    r.check_keys(path, m, known, &["generic_resources", "devices"]);
    out.cpus = m.get("cpus").and_then(|v| r.string(&join(path, "cpus"), v));
    out.memory = m
        .get("memory")
        .and_then(|v| r.string(&join(path, "memory"), v));
    out.pids = m.get("pids").and_then(|v| r.int(&join(path, "pids"), v));
    out
}

fn update_config(r: &mut Reader, path: &str, v: &Value) -> Option<UpdateConfig> {
    let m = r.map(path, v)?;
    r.check_keys(
        path,
        m,
        &[
            "parallelism",
            "delay",
            "failure_action",
            "monitor",
            "max_failure_ratio",
            "order",
        ],
        &[],
    );
    let at = |k: &str| join(path, k);
    Some(UpdateConfig {
        parallelism: m
            .get("parallelism")
            .and_then(|v| r.uint(&at("parallelism"), v)),
        delay: m.get("delay").and_then(|v| r.string(&at("delay"), v)),
        failure_action: m
            .get("failure_action")
            .and_then(|v| r.choice(&at("failure_action"), v, &["pause", "continue", "rollback"])),
        monitor: m.get("monitor").and_then(|v| r.string(&at("monitor"), v)),
        max_failure_ratio: m
            .get("max_failure_ratio")
            .and_then(|v| r.float(&at("max_failure_ratio"), v)),
        order: m
            .get("order")
            .and_then(|v| r.choice(&at("order"), v, &["stop-first", "start-first"])),
    })
}
