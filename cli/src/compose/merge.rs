//! Several `-c` files into one, with Compose's override rules: mappings merge
//! key by key (a later file wins), lists append, except that `ports`,
//! `volumes`, `secrets` and `configs` replace the entry with the same target,
//! and `command`, `entrypoint` and `healthcheck.test` are replaced whole.
//! Before merging, the keys that take a list or a mapping (`environment`,
//! `labels`, `networks`, `depends_on`, `sysctls`, `extra_hosts`, …) are
//! brought to their mapping form so that both forms merge alike.

use indexmap::IndexMap;

use super::value::Value;

/// Keys replaced whole, never merged, at any depth of a service.
const REPLACED: &[&str] = &["command", "entrypoint", "test"];

/// Brings one file's list-or-mapping keys to the mapping form.
pub fn normalize(doc: &mut Value) {
    let Value::Map(top) = doc else { return };
    if let Some(Value::Map(services)) = top.get_mut("services") {
        for (_, service) in services.iter_mut() {
            let Value::Map(s) = service else { continue };
            for key in ["environment", "labels", "sysctls"] {
                normalize_pairs(s, key, '=');
            }
            normalize_pairs(s, "extra_hosts", ':');
            normalize_names(s, "networks", Value::Null);
            let started = Value::Map(IndexMap::from([(
                "condition".to_string(),
                Value::Str("service_started".into()),
            )]));
            normalize_names(s, "depends_on", started);
            if let Some(Value::Map(deploy)) = s.get_mut("deploy") {
                normalize_pairs(deploy, "labels", '=');
            }
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        if let Some(Value::Map(objects)) = top.get_mut(section) {
            for (_, object) in objects.iter_mut() {
                if let Value::Map(o) = object {
                    normalize_pairs(o, "labels", '=');
                }
            }
        }
    }
}

/// `["A=1", "B"]` → `{A: "1", B: null}`.
fn normalize_pairs(map: &mut IndexMap<String, Value>, key: &str, sep: char) {
    let Some(Value::Seq(items)) = map.get(key) else {
        return;
    };
    // Leave lists with non-string items as they are: the reader reports them.
    if !items.iter().all(|i| matches!(i, Value::Str(_))) {
        return;
    }
    let mut out = IndexMap::new();
    for item in items {
        if let Value::Str(s) = item {
            match s.split_once(sep) {
                Some((k, v)) => out.insert(k.to_string(), Value::Str(v.to_string())),
                None => out.insert(s.clone(), Value::Null),
            };
        }
    }
    map.insert(key.to_string(), Value::Map(out));
}

/// `[a, b]` → `{a: default, b: default}`.
fn normalize_names(map: &mut IndexMap<String, Value>, key: &str, default: Value) {
    let Some(Value::Seq(items)) = map.get(key) else {
        return;
    };
    if !items.iter().all(|i| matches!(i, Value::Str(_))) {
        return;
    }
    let out = items
        .iter()
        .filter_map(|i| match i {
            Value::Str(s) => Some((s.clone(), default.clone())),
            _ => None,
        })
        .collect();
    map.insert(key.to_string(), Value::Map(out));
}

/// Merges `over` into `base` (both normalized files).
pub fn merge(base: &mut Value, over: Value) {
    merge_at(base, over, "");
}

fn merge_at(base: &mut Value, over: Value, key: &str) {
    match (base, over) {
        (Value::Map(b), Value::Map(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if !REPLACED.contains(&k.as_str()) => merge_at(existing, v, &k),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Seq(b), Value::Seq(o)) => match key {
            "ports" | "volumes" | "secrets" | "configs" => {
                for item in o {
                    let id = identity(key, &item);
                    match b.iter_mut().find(|e| identity(key, e) == id) {
                        Some(existing) => *existing = item,
                        None => b.push(item),
                    }
                }
            }
            _ => {
                for item in o {
                    if !b.contains(&item) {
                        b.push(item);
                    }
                }
            }
        },
        (b, o) => *b = o,
    }
}

/// What makes an entry of `ports`/`volumes`/`secrets`/`configs` the same one.
fn identity(key: &str, v: &Value) -> String {
    match (key, v) {
        ("volumes", Value::Str(s)) => {
            // source:target[:mode] or a lone target
            let parts: Vec<&str> = s.split(':').collect();
            match parts.len() {
                1 => parts[0].to_string(),
                _ => parts[1].to_string(),
            }
        }
        ("secrets" | "configs", Value::Str(s)) => s.clone(),
        ("volumes" | "secrets" | "configs", Value::Map(m)) => m
            .get("target")
            .or_else(|| m.get("source"))
            .and_then(Value::scalar_text)
            .unwrap_or_default(),
        (_, Value::Map(m)) => ["target", "published", "protocol", "mode", "host_ip"]
            .iter()
            .map(|k| m.get(*k).and_then(Value::scalar_text).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("/"),
        (_, other) => other.scalar_text().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::yaml;

    fn doc(text: &str) -> Value {
        let mut v = yaml::parse(text).expect("yaml");
        normalize(&mut v);
        v
    }

    fn merged(a: &str, b: &str) -> Value {
        let mut base = doc(a);
        merge(&mut base, doc(b));
        base
    }

    #[test]
    fn environment_lists_and_maps_merge_key_by_key() {
        let m = merged(
            "services: {web: {image: a, environment: [A=1, B=2]}}",
            "services: {web: {environment: {B: '3', C: '4'}}}",
        );
        let expect = doc("services: {web: {image: a, environment: {A: '1', B: '3', C: '4'}}}");
        assert_eq!(m, expect);
    }

    #[test]
    fn scalars_are_overridden_and_new_services_added() {
        let m = merged(
            "services: {web: {image: a:1, user: x}}",
            "services: {web: {image: a:2}, db: {image: pg}}",
        );
        assert_eq!(
            m,
            doc("services: {web: {image: 'a:2', user: x}, db: {image: pg}}")
        );
    }

    #[test]
    fn ports_and_volumes_replace_the_same_target_and_append_others() {
        let m = merged(
            "services: {web: {ports: ['80:80'], volumes: ['data:/data', '/tmp/x:/x']}}",
            "services: {web: {ports: ['80:80', '443:443'], volumes: ['other:/data']}}",
        );
        assert_eq!(
            m,
            doc("services: {web: {ports: ['80:80', '443:443'], volumes: ['other:/data', '/tmp/x:/x']}}")
        );
    }

    #[test]
    fn command_and_healthcheck_test_are_replaced_not_appended() {
        let m = merged(
            "services: {web: {command: [a, b], healthcheck: {test: [CMD, x], interval: 5s}}}",
            "services: {web: {command: [c], healthcheck: {test: [CMD, y]}}}",
        );
        assert_eq!(
            m,
            doc("services: {web: {command: [c], healthcheck: {test: [CMD, y], interval: 5s}}}")
        );
    }

    #[test]
    fn network_and_depends_on_lists_become_mappings() {
        let d = doc("services: {web: {networks: [front], depends_on: [db]}}");
        assert_eq!(
            d,
            doc("services: {web: {networks: {front: null}, depends_on: {db: {condition: service_started}}}}")
        );
    }

    #[test]
    fn other_lists_append_without_repeating() {
        let m = merged(
            "services: {web: {cap_add: [NET_ADMIN], dns: [1.1.1.1]}}",
            "services: {web: {cap_add: [NET_ADMIN, SYS_TIME]}}",
        );
        assert_eq!(
            m,
            doc("services: {web: {cap_add: [NET_ADMIN, SYS_TIME], dns: [1.1.1.1]}}")
        );
    }
}
