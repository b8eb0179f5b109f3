//! Mounts: Docker's `--mount` syntax
//! (`type=bind,source=/x,target=/y,readonly`, `type=volume,source=v,target=/d`,
//! `type=tmpfs,target=/t,tmpfs-size=64m`) and the rules every mount must
//! follow whatever it came from.

use std::path::Path;

use crate::types::mount::Type as MountType;
use crate::types::Mount;

use super::units::{parse_bool, parse_memory_bytes};
use super::{csv_fields, ValueError};

/// The word Docker uses for a mount type (`bind`, `volume`, `tmpfs`).
pub fn mount_type_word(t: MountType) -> &'static str {
    match t {
        MountType::Bind => "bind",
        MountType::Volume => "volume",
        MountType::Tmpfs => "tmpfs",
    }
}

/// `bind`, `volume` or `tmpfs` (any case).
fn parse_mount_type(value: &str) -> Result<MountType, ValueError> {
    match value.to_ascii_lowercase().as_str() {
        "bind" => Ok(MountType::Bind),
        "volume" => Ok(MountType::Volume),
        "tmpfs" => Ok(MountType::Tmpfs),
        _ => Err(ValueError(format!(
            "mount type '{value}' is not supported: use bind, volume or tmpfs"
        ))),
    }
}

/// One `--mount` value. The type defaults to `volume`, as in Docker. The
/// result is checked with [`check_mount`].
pub fn parse_mount(value: &str) -> Result<Mount, ValueError> {
    let mut mount = Mount {
        r#type: MountType::Volume as i32,
        ..Default::default()
    };
    let mut volume_options = false;
    let mut tmpfs_options = false;
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let val = match (key.as_str(), val) {
            ("readonly" | "ro" | "volume-nocopy", None) => "true",
            (_, Some(v)) => v,
            (_, None) => {
                return Err(ValueError(format!(
                    "invalid field '{field}' must be a key=value pair"
                )))
            }
        };
        let bad_value = || ValueError(format!("invalid value for {key}: {val}"));
        match key.as_str() {
            "type" => mount.r#type = parse_mount_type(val)? as i32,
            "source" | "src" => mount.source = val.to_string(),
            "target" | "dst" | "destination" => mount.target = val.to_string(),
            "readonly" | "ro" => mount.read_only = parse_bool(val).map_err(|_| bad_value())?,
            "volume-nocopy" => {
                mount.volume_nocopy = parse_bool(val).map_err(|_| bad_value())?;
                volume_options = true;
            }
            "volume-label" => {
                let (k, v) = val.split_once('=').unwrap_or((val, ""));
                mount.volume_labels.insert(k.to_string(), v.to_string());
                volume_options = true;
            }
            "tmpfs-size" => {
                mount.tmpfs_size_bytes = parse_memory_bytes(val).map_err(|_| bad_value())?;
                tmpfs_options = true;
            }
            "tmpfs-mode" => {
                mount.tmpfs_mode = u32::from_str_radix(val, 8).map_err(|_| bad_value())?;
                tmpfs_options = true;
            }
            // The local driver is the one there is: naming it is fine.
            "volume-driver" if val == "local" => volume_options = true,
            "volume-driver" => {
                return Err(ValueError(format!(
                    "volume driver '{val}' is not supported: rswarm volumes use the local driver"
                )))
            }
            "bind-propagation" | "bind-nonrecursive" | "consistency" | "volume-opt" => {
                return Err(ValueError(format!(
                    "mount option '{key}' is not supported by rswarm"
                )))
            }
            _ => return Err(ValueError(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if mount.target.is_empty() {
        return Err(ValueError::new("target is required"));
    }
    let t = mount.r#type();
    if volume_options && t != MountType::Volume {
        return Err(ValueError(format!(
            "cannot mix 'volume-*' options with mount type '{}'",
            mount_type_word(t)
        )));
    }
    if tmpfs_options && t != MountType::Tmpfs {
        return Err(ValueError(format!(
            "cannot mix 'tmpfs-*' options with mount type '{}'",
            mount_type_word(t)
        )));
    }
    Ok(mount)
}

/// Makes a relative bind source (`.`, `./data`) absolute against `base`,
/// as Docker does with the current directory (and Compose with the
/// project directory).
pub fn resolve_bind_source(mount: &mut Mount, base: &Path) {
    let relative = mount.source == "." || mount.source.starts_with("./");
    if mount.r#type() == MountType::Bind && relative {
        let joined = base.join(&mount.source);
        let mut clean = std::path::PathBuf::new();
        for part in joined.components() {
            match part {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        mount.source = clean.to_string_lossy().into_owned();
    }
}

/// The longest volume name (one file name on the node).
pub const MAX_VOLUME_NAME: usize = 255;

/// Docker's rule for a local volume's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`,
/// at most [`MAX_VOLUME_NAME`] characters.
pub fn check_volume_name(name: &str) -> Result<(), ValueError> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= MAX_VOLUME_NAME
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        return Ok(());
    }
    if b.len() > MAX_VOLUME_NAME {
        return Err(ValueError(format!(
            "volume name is longer than {MAX_VOLUME_NAME} characters"
        )));
    }
    Err(ValueError(format!(
        "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

/// The rules a mount must follow (the daemon's, in Docker): an absolute
/// target; a bind needs an absolute source; a tmpfs has none.
pub fn check_mount(mount: &Mount) -> Result<(), ValueError> {
    let t = mount.r#type();
    let kind = mount_type_word(t);
    if !mount.target.starts_with('/') {
        return Err(ValueError(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{}' mount path must be absolute",
            mount.target
        )));
    }
    match t {
        MountType::Bind if mount.source.is_empty() => Err(ValueError(format!(
            "invalid mount config for type \"{kind}\": field Source must not be empty"
        ))),
        MountType::Bind if !mount.source.starts_with('/') => Err(ValueError(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{}' mount path must be absolute",
            mount.source
        ))),
        MountType::Tmpfs if !mount.source.is_empty() => Err(ValueError(format!(
            "invalid mount config for type \"{kind}\": field Source must not be specified"
        ))),
        MountType::Volume if mount.source.contains('/') => Err(ValueError(format!(
            "invalid mount config for type \"{kind}\": invalid volume name '{}': a volume is named, use type=bind for a host path",
            mount.source
        ))),
        MountType::Volume if !mount.source.is_empty() => check_volume_name(&mount.source)
            .map_err(|e| ValueError(format!("invalid mount config for type \"{kind}\": {e}"))),
        MountType::Volume if mount.volume_external => Err(ValueError(format!(
            "invalid mount config for type \"{kind}\": an external volume needs a name"
        ))),
        _ if mount.tmpfs_size_bytes < 0 => Err(ValueError(format!(
            "invalid mount config for type \"{kind}\": tmpfs-size must not be negative"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(value: &str) -> String {
        match parse_mount(value) {
            Ok(m) => panic!("{value}: expected an error, got {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn only_the_local_volume_driver_is_accepted() {
        let m = parse_mount("type=volume,source=db,target=/d,volume-driver=local").expect("local");
        assert_eq!(m.source, "db");
        assert_eq!(
            err("type=volume,source=db,target=/d,volume-driver=nfs"),
            "volume driver 'nfs' is not supported: rswarm volumes use the local driver"
        );
        assert_eq!(
            err("type=volume,source=db,target=/d,volume-opt=type=tmpfs"),
            "mount option 'volume-opt' is not supported by rswarm"
        );
    }

    #[test]
    fn volume_names_follow_docker() {
        for ok in ["ab", "data", "shop_db", "v.1-x", &"a".repeat(255)] {
            assert_eq!(check_volume_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a", "_x", "-x", "a b", "a:b", "ä1", &"a".repeat(256)] {
            assert!(check_volume_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_volume_name("a b").map_err(|e| e.to_string()),
            Err("\"a b\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path".into())
        );
    }

    #[test]
    fn bind_volume_and_tmpfs() {
        assert_eq!(
            parse_mount("type=bind,source=/x,target=/y,readonly"),
            Ok(Mount {
                r#type: MountType::Bind as i32,
                source: "/x".into(),
                target: "/y".into(),
                read_only: true,
                ..Default::default()
            })
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770"),
            Ok(Mount {
                r#type: MountType::Tmpfs as i32,
                target: "/t".into(),
                tmpfs_size_bytes: 64 << 20,
                tmpfs_mode: 0o1770,
                ..Default::default()
            })
        );
        let volume = parse_mount("type=volume,source=v,target=/d,volume-label=a=b,volume-nocopy")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(volume.r#type(), MountType::Volume);
        assert_eq!(
            (volume.source.as_str(), volume.target.as_str()),
            ("v", "/d")
        );
        assert!(volume.volume_nocopy);
        assert_eq!(volume.volume_labels.get("a").map(String::as_str), Some("b"));
        // The type defaults to volume; dst/src/ro=false are accepted.
        let default = parse_mount("src=v,dst=/d,ro=false").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.r#type(), MountType::Volume);
        assert!(!default.read_only);
    }

    #[test]
    fn refusals_use_dockers_words() {
        assert_eq!(err("type=bind,source=/x"), "target is required");
        assert_eq!(
            err("type=bind,target=/y,tmpfs-size=1m"),
            "cannot mix 'tmpfs-*' options with mount type 'bind'"
        );
        assert_eq!(
            err("type=tmpfs,target=/y,volume-nocopy"),
            "cannot mix 'volume-*' options with mount type 'tmpfs'"
        );
        assert_eq!(
            err("type=tmpfs,target=/t,tmpfs-size=lots"),
            "invalid value for tmpfs-size: lots"
        );
        assert_eq!(
            err("type=bind,target=/y,ro=maybe"),
            "invalid value for ro: maybe"
        );
        assert_eq!(
            err("type=bind,target"),
            "invalid field 'target' must be a key=value pair"
        );
        assert_eq!(
            err("type=bind,target=/y,colour=red"),
            "unexpected key 'colour' in 'colour=red'"
        );
        assert_eq!(
            err("type=npipe,target=/y"),
            "mount type 'npipe' is not supported: use bind, volume or tmpfs"
        );
    }

    #[test]
    fn checks_paths_per_type() {
        let check = |v: &str| {
            parse_mount(v)
                .map_err(|e| e.to_string())
                .and_then(|m| check_mount(&m).map_err(|e| e.to_string()))
        };
        assert_eq!(check("type=bind,source=/x,target=/y"), Ok(()));
        assert_eq!(check("type=volume,target=/d"), Ok(()));
        assert_eq!(
            check("type=bind,target=/y"),
            Err("invalid mount config for type \"bind\": field Source must not be empty".into())
        );
        assert_eq!(
            check("type=bind,source=x,target=/y"),
            Err("invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute".into())
        );
        assert_eq!(
            check("type=tmpfs,source=x,target=/t"),
            Err(
                "invalid mount config for type \"tmpfs\": field Source must not be specified"
                    .into()
            )
        );
        assert_eq!(
            check("type=volume,source=v,target=rel"),
            Err("invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute".into())
        );
    }

    #[test]
    fn relative_bind_sources_resolve_against_a_base() {
        let mut m =
            parse_mount("type=bind,source=./data/../x,target=/y").unwrap_or_else(|e| panic!("{e}"));
        resolve_bind_source(&mut m, Path::new("/srv/app"));
        assert_eq!(m.source, "/srv/app/x");
    }
}
