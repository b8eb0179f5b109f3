//! The user's registry credentials, stored as Docker stores them: the
//! `auths` of `$HOME/.rswarm/config.json` (`{"auths": {"10.0.0.5:5000":
//! {"auth": base64("user:password")}}}`; Docker Hub under
//! `https://index.docker.io/v1/`), the file 0600 in a 0700 directory,
//! whatever the umask. `rswarm login` writes an entry, `rswarm logout`
//! removes it, and [`registry_auth_for`] gives what `--with-registry-auth`
//! sends with a spec: Docker's `X-Registry-Auth` encoding (base64url of the
//! JSON `{"username", "password", "serveraddress"}`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use rswarm_proto::spec::reference::ImageRef;
use serde_json::{Map, Value};

/// Docker Hub's key in config.json.
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// `$HOME/.rswarm/config.json`.
pub fn config_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("HOME is not set: cannot find the credentials file")?;
    Ok(PathBuf::from(home).join(".rswarm").join("config.json"))
}

/// The config.json key of a server as typed (`docker.io`, `host:5000`,
/// `https://host:5000/`).
pub fn server_key(server: &str) -> String {
    let h = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let h = h.split('/').next().unwrap_or(h);
    match h {
        ""
        | "docker.io"
        | "index.docker.io"
        | "registry-1.docker.io"
        | "registry.hub.docker.com" => HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

fn read_config() -> anyhow::Result<Map<String, Value>> {
    let path = config_path()?;
    match fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => anyhow::bail!("{} is not a JSON object", path.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_config(config: &Map<String, Value>) -> anyhow::Result<()> {
    let path = config_path()?;
    let dir = path
        .parent()
        .context("credentials file without a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(serde_json::to_string_pretty(&Value::Object(config.clone()))?.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Stores `user`/`password` for `server` (replacing what was there).
pub fn store(server: &str, user: &str, password: &str) -> anyhow::Result<()> {
    let mut config = read_config()?;
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    if let Some(m) = auths.as_object_mut() {
        m.insert(server_key(server), serde_json::json!({ "auth": encoded }));
    }
    write_config(&config)
}

/// Removes the entry of `server`; whether there was one.
pub fn remove(server: &str) -> anyhow::Result<bool> {
    let mut config = read_config()?;
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(&server_key(server)))
        .is_some();
    if removed {
        write_config(&config)?;
    }
    Ok(removed)
}

/// The stored (user, password) of `server`, if any.
pub fn lookup(server: &str) -> anyhow::Result<Option<(String, String)>> {
    let config = read_config()?;
    let Some(auth) = config
        .get("auths")
        .and_then(|a| a.get(server_key(server)))
        .and_then(|e| e.get("auth"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let path = config_path()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .with_context(|| {
            format!(
                "{}: the entry of {} is not base64 user:password",
                path.display(),
                server_key(server)
            )
        })?;
    let (user, password) = bytes.split_once(':').with_context(|| {
        format!(
            "{}: the entry of {} is not base64 user:password",
            path.display(),
            server_key(server)
        )
    })?;
    Ok(Some((user.to_string(), password.to_string())))
}

/// What `--with-registry-auth` sends with a service of `image`: the stored
/// credentials of the image's registry, encoded as Docker's
/// `X-Registry-Auth`; `None` when the user has not logged in there.
pub fn registry_auth_for(image: &str) -> anyhow::Result<Option<String>> {
    let r = ImageRef::parse(image).map_err(|e| anyhow::anyhow!("image {image:?}: {e}"))?;
    let Some((user, password)) = lookup(&r.domain)? else {
        return Ok(None);
    };
    let json = serde_json::json!({
        "username": user,
        "password": password,
        "serveraddress": server_key(&r.domain),
    });
    Ok(Some(
        base64::engine::general_purpose::URL_SAFE.encode(json.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_dockers() {
        assert_eq!(server_key("docker.io"), HUB_KEY);
        assert_eq!(server_key("https://index.docker.io/v1/"), HUB_KEY);
        assert_eq!(server_key("http://10.0.0.5:5000/"), "10.0.0.5:5000");
    }

    /// One test for everything touching HOME (the process environment).
    #[test]
    fn store_lookup_encode_and_remove() {
        let home = tempfile::tempdir().unwrap();
        std::env::set_var("HOME", home.path());
        store("10.0.0.5:5000", "alice", "s3:cret").unwrap();
        let path = config_path().unwrap();
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"10.0.0.5:5000\""), "{text}");
        assert!(!text.contains("s3:cret"), "stored encoded");
        assert_eq!(
            lookup("10.0.0.5:5000").unwrap(),
            Some(("alice".into(), "s3:cret".into()))
        );
        let sent = registry_auth_for("10.0.0.5:5000/app:1").unwrap().unwrap();
        let json: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE
                .decode(sent)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["username"], "alice");
        assert_eq!(json["password"], "s3:cret");
        assert_eq!(json["serveraddress"], "10.0.0.5:5000");
        assert_eq!(registry_auth_for("busybox").unwrap(), None);
        assert!(remove("10.0.0.5:5000").unwrap());
        assert!(!remove("10.0.0.5:5000").unwrap());
        assert_eq!(lookup("10.0.0.5:5000").unwrap(), None);
    }
}
