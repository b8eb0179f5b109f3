//! Compose volumes → mounts of type volume, as `docker stack deploy` makes
//! them. A service's named volume must be declared under the top-level
//! `volumes:`; it becomes the local volume `<stack>_<name>` (or its `name:`)
//! with the declared labels and `com.docker.stack.namespace`, created on the
//! node where a task lands. An `external: true` volume is used by its name
//! and never created: a task on a node without it fails. A volume without a
//! source is the task's anonymous volume. Only the `local` driver without
//! `driver_opts` is honoured; anything else is refused.

use indexmap::IndexMap;
use rswarm_proto::spec::mounts::parse_mount;
use rswarm_proto::types::Mount;

use super::model::{Mount as ComposeMount, Volume};
use super::to_spec::NAMESPACE_LABEL;

/// Problems of the top-level `volumes:` (key path, why), in the file's order.
pub(super) fn check_top_level(volumes: &IndexMap<String, Volume>) -> Vec<(String, String)> {
    let mut out = vec![];
    for (key, v) in volumes {
        if let Some(d) = v.driver.as_deref().filter(|d| *d != "local") {
            out.push((
                format!("volumes.{key}.driver"),
                format!("volume driver {d:?} is not supported: only \"local\" is"),
            ));
        }
        if !v.driver_opts.is_empty() {
            out.push((
                format!("volumes.{key}.driver_opts"),
                "driver_opts are not supported: the local driver takes no options in rswarm"
                    .to_string(),
            ));
        }
        if v.external.is_some() && !v.labels.is_empty() {
            out.push((
                format!("volumes.{key}.labels"),
                "an external volume is used as it is: it cannot have labels".to_string(),
            ));
        }
    }
    out
}

/// Quotes one field of a comma-separated `--mount` value when it needs it.
fn csv(field: String) -> String {
    if field.contains(',') || field.contains('"') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// The mount a service's volume entry `m` (of type volume) means in stack
/// `stack`; Err is why it cannot be honoured.
pub(super) fn volume_mount(
    volumes: &IndexMap<String, Volume>,
    stack: &str,
    m: &ComposeMount,
) -> Result<Mount, String> {
    let mut fields = vec!["type=volume".to_string()];
    let mut labels: Vec<(String, String)> = vec![];
    let mut external = false;
    if let Some(source) = m.source.as_deref().filter(|s| !s.is_empty()) {
        let declared = volumes.get(source).ok_or_else(|| {
            format!("volume {source:?} is not declared under the top-level volumes key")
        })?;
        let real = match (&declared.external, &declared.name) {
            (Some(ext), _) => {
                external = true;
                ext.clone()
            }
            (None, Some(name)) => name.clone(),
            (None, None) => format!("{stack}_{source}"),
        };
        if !external {
            labels.extend(declared.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            labels.push((NAMESPACE_LABEL.to_string(), stack.to_string()));
        }
        fields.push(format!("source={real}"));
    }
    fields.push(format!("target={}", m.target));
    if m.read_only {
        fields.push("readonly=true".into());
    }
    if m.nocopy {
        fields.push("volume-nocopy=true".into());
    }
    let text: Vec<String> = fields.into_iter().map(csv).collect();
    let mut mount = parse_mount(&text.join(",")).map_err(|e| e.to_string())?;
    rswarm_proto::spec::mounts::check_mount(&mount).map_err(|e| e.to_string())?;
    mount.volume_labels.extend(labels);
    mount.volume_external = external;
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::MountKind;

    fn vol(target: &str, source: Option<&str>) -> ComposeMount {
        ComposeMount {
            kind: MountKind::Volume,
            source: source.map(str::to_string),
            target: target.into(),
            read_only: false,
            nocopy: false,
            propagation: None,
            tmpfs_size: None,
            tmpfs_mode: None,
        }
    }

    fn declared() -> IndexMap<String, Volume> {
        let mut v = IndexMap::new();
        let mut data = Volume::default();
        data.labels.insert("tier".into(), "db".into());
        v.insert("data".into(), data);
        v.insert(
            "named".into(),
            Volume {
                name: Some("shared-data".into()),
                ..Default::default()
            },
        );
        v.insert(
            "ext".into(),
            Volume {
                external: Some("outside".into()),
                name: Some("outside".into()),
                ..Default::default()
            },
        );
        v
    }

    #[test]
    fn named_volumes_are_namespaced_and_labelled() {
        let mut m = vol("/var/lib/db", Some("data"));
        m.nocopy = true;
        m.read_only = true;
        let mount = volume_mount(&declared(), "shop", &m).expect("mount");
        assert_eq!(mount.source, "shop_data");
        assert_eq!(mount.target, "/var/lib/db");
        assert!(mount.volume_nocopy && mount.read_only && !mount.volume_external);
        assert_eq!(
            mount.volume_labels.get("tier").map(String::as_str),
            Some("db")
        );
        assert_eq!(
            mount.volume_labels.get(NAMESPACE_LABEL).map(String::as_str),
            Some("shop")
        );
        let named = volume_mount(&declared(), "shop", &vol("/d", Some("named"))).expect("named");
        assert_eq!(named.source, "shared-data");
    }

    #[test]
    fn external_volumes_are_used_by_name_and_anonymous_ones_have_none() {
        let ext = volume_mount(&declared(), "shop", &vol("/d", Some("ext"))).expect("ext");
        assert_eq!(ext.source, "outside");
        assert!(ext.volume_external);
        assert!(ext.volume_labels.is_empty());
        let anon = volume_mount(&declared(), "shop", &vol("/cache", None)).expect("anonymous");
        assert_eq!((anon.source.as_str(), anon.volume_external), ("", false));
    }

    #[test]
    fn undeclared_volumes_and_other_drivers_are_refused() {
        assert_eq!(
            volume_mount(&declared(), "shop", &vol("/d", Some("nope"))),
            Err("volume \"nope\" is not declared under the top-level volumes key".into())
        );
        let mut v = IndexMap::new();
        v.insert(
            "x".to_string(),
            Volume {
                driver: Some("nfs".into()),
                driver_opts: [("type".to_string(), "nfs".to_string())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        );
        let problems = check_top_level(&v);
        assert_eq!(
            problems,
            vec![
                (
                    "volumes.x.driver".to_string(),
                    "volume driver \"nfs\" is not supported: only \"local\" is".to_string()
                ),
                (
                    "volumes.x.driver_opts".to_string(),
                    "driver_opts are not supported: the local driver takes no options in rswarm"
                        .to_string()
                ),
            ]
        );
        assert!(check_top_level(&declared()).is_empty());
    }

    fn plan_of(text: &str) -> Result<crate::compose::to_spec::StackPlan, Vec<String>> {
        let sources = [crate::compose::Source {
            name: "app.yml".into(),
            text: text.into(),
        }];
        let loaded =
            crate::compose::load(&sources, std::path::Path::new("/srv/app"), None, &|_| None)?;
        crate::compose::to_spec::plan(&loaded.project, "shop", "app.yml")
    }

    #[test]
    fn a_compose_file_with_volumes_becomes_volume_mounts() {
        let p = plan_of(
            "services:
  db:
    image: busybox
    volumes:
      - data:/var/lib/db
      - type: volume
        source: logs
        target: /logs
        read_only: true
        volume: {nocopy: true}
      - /cache
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 64M}
volumes:
  data:
    labels: {backup: daily}
  logs:
    external: true
",
        )
        .expect("converts");
        let c = p.services[0]
            .task
            .clone()
            .and_then(|t| t.container)
            .expect("container");
        let m = &c.mounts;
        assert_eq!(m.len(), 4);
        assert_eq!(
            (m[0].source.as_str(), m[0].target.as_str()),
            ("shop_data", "/var/lib/db")
        );
        assert_eq!(
            m[0].volume_labels.get("backup").map(String::as_str),
            Some("daily")
        );
        assert_eq!(
            m[0].volume_labels.get(NAMESPACE_LABEL).map(String::as_str),
            Some("shop")
        );
        assert_eq!(m[1].source, "logs");
        assert!(m[1].volume_external && m[1].read_only && m[1].volume_nocopy);
        assert_eq!((m[2].source.as_str(), m[2].target.as_str()), ("", "/cache"));
        assert_eq!(m[3].tmpfs_size_bytes, 64 << 20);
    }

    #[test]
    fn volume_refusals_name_their_key() {
        let e = plan_of(
            "services:
  db:
    image: busybox
    volumes: [nope:/d]
volumes:
  data:
    driver_opts: {type: nfs}
",
        )
        .expect_err("refused");
        assert_eq!(
            e,
            [
                "app.yml: volumes.data.driver_opts: driver_opts are not supported: the local driver takes no options in rswarm",
                "app.yml: services.db.volumes[0]: volume \"nope\" is not declared under the top-level volumes key",
            ]
        );
    }
}
