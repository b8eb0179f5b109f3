//! A service's `volumes:` entries, short (`SOURCE:TARGET[:MODE]`, `TARGET`) or
//! long syntax, into mounts.

use super::model::*;
use super::read::Reader;
use super::read_service::octal;
use super::value::{join, Value};

/// A volume entry, short (`SOURCE:TARGET[:MODE]`, `TARGET`) or long.
pub(super) fn volume(r: &mut Reader, path: &str, v: &Value) -> Option<Mount> {
    let mut mount = Mount {
        kind: MountKind::Volume,
        source: None,
        target: String::new(),
        read_only: false,
        nocopy: false,
        propagation: None,
        tmpfs_size: None,
        tmpfs_mode: None,
    };
    match v {
        Value::Str(text) => {
            let parts: Vec<&str> = text.split(':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [t] => (None, *t, None),
                [s, t] => (Some(*s), *t, None),
                [s, t, m] => (Some(*s), *t, Some(*m)),
                _ => {
                    r.error(path, format!("invalid volume {text:?}"));
                    return None;
                }
            };
            mount.target = target.to_string();
            if let Some(src) = source {
                if src.starts_with('/') || src.starts_with('.') || src.starts_with('~') {
                    mount.kind = MountKind::Bind;
                    mount.source = Some(r.host_path(src));
                } else {
                    mount.source = Some(src.to_string());
                }
            }
            for opt in mode.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
                match opt {
                    "ro" => mount.read_only = true,
                    "rw" => {}
                    "nocopy" if mount.kind == MountKind::Volume => mount.nocopy = true,
                    "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave"
                        if mount.kind == MountKind::Bind =>
                    {
                        mount.propagation = Some(opt.into())
                    }
                    _ => {
                        r.error(path, format!("invalid volume mode {opt:?} in {text:?}"));
                        return None;
                    }
                }
            }
        }
        Value::Map(m) => {
            r.check_keys(
                path,
                m,
                &[
                    "type",
                    "source",
                    "target",
                    "read_only",
                    "volume",
                    "bind",
                    "tmpfs",
                    "consistency",
                ],
                &[],
            );
            let kind = m
                .get("type")
                .and_then(|v| r.choice(&join(path, "type"), v, &["volume", "bind", "tmpfs"]));
            mount.kind = match kind.as_deref() {
                Some("bind") => MountKind::Bind,
                Some("tmpfs") => MountKind::Tmpfs,
                Some(_) => MountKind::Volume,
                None => {
                    if !m.contains_key("type") {
                        r.error(path, "missing type (volume, bind or tmpfs)");
                    }
                    return None;
                }
            };
            mount.source = m
                .get("source")
                .and_then(|v| r.string(&join(path, "source"), v));
            if mount.kind == MountKind::Bind {
                match &mount.source {
                    Some(src) => mount.source = Some(r.host_path(src)),
                    None => r.error(path, "a bind mount needs a source"),
                }
            }
            mount.target = m
                .get("target")
                .and_then(|v| r.string(&join(path, "target"), v))
                .unwrap_or_default();
            mount.read_only = m
                .get("read_only")
                .and_then(|v| r.bool(&join(path, "read_only"), v))
                .unwrap_or(false);
            if let Some(Value::Map(vol)) = m.get("volume") {
                mount.nocopy = vol
                    .get("nocopy")
                    .and_then(|v| r.bool(&join(path, "volume.nocopy"), v))
                    .unwrap_or(false);
            }
            if let Some(Value::Map(bind)) = m.get("bind") {
                mount.propagation = bind.get("propagation").and_then(|v| {
                    r.choice(
                        &join(path, "bind.propagation"),
                        v,
                        &[
                            "rprivate", "private", "rshared", "shared", "rslave", "slave",
                        ],
                    )
                });
            }
            if let Some(Value::Map(t)) = m.get("tmpfs") {
                mount.tmpfs_size = t
                    .get("size")
                    .and_then(|v| r.string(&join(path, "tmpfs.size"), v));
                if let Some(mode) = t
                    .get("mode")
                    .and_then(|v| r.string(&join(path, "tmpfs.mode"), v))
                {
                    mount.tmpfs_mode = octal(r, &join(path, "tmpfs.mode"), &mode);
                }
            }
        }
        other => {
            r.error(
                path,
                format!("must be a string or a mapping, not {}", other.kind()),
            );
            return None;
        }
    }
    if !mount.target.starts_with('/') {
        r.error(
            path,
            format!(
                "invalid mount target {:?}: must be an absolute path",
                mount.target
            ),
        );
        return None;
    }
    Some(mount)
}
