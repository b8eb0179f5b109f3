//! Encryption at rest on a node (as swarmkit's): a data encryption key (DEK)
//! seals the Raft store's log, values and snapshots (through
//! `rswarm_raft::StoreConfig::data_key`) and the node's TLS private key; the DEK
//! itself is stored wrapped by a key-encrypting key (KEK). Without autolock the
//! KEK is a 0600 file beside it, as swarmkit keeps it: the point is that no
//! private key, join token or secret sits in the data dir in clear text.
//!
//! ```text
//! <data-dir>/keys/        0700
//!     kek                 the KEK (32 random bytes), 0600
//!     dek                 the DEK sealed by the KEK, 0600
//! <data-dir>/certificates/node.key   the TLS key sealed by the DEK, as an
//!                                    "RSWARM SEALED NODE KEY" armored block
//! ```

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use base64::Engine;
use rswarm_proto::identity::tls::NodeTls;
use rswarm_raft::DataKey;

const KEK_FILE: &str = "kek";
const DEK_FILE: &str = "dek";
/// With autolock: the unlock key, sealed by the DEK (so `unlock-key` can show it
/// on an unlocked manager); the KEK is then never on disk.
const UNLOCK_KEY_FILE: &str = "unlock-key";
const UNLOCK_KEY_AAD: &[u8] = b"rswarm unlock key v1";
/// Docker's unlock key prefix.
const UNLOCK_PREFIX: &str = "SWMKEY-1-";
/// Docker's words for a call to a locked manager.
pub(crate) const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"rswarm swarm unlock\" to unlock it.";
/// swarmkit's words for a wrong unlock key.
pub(crate) const INVALID_KEY: &str = "swarm could not be unlocked: invalid key provided";
/// Associated data of the wrapped DEK.
const DEK_AAD: &[u8] = b"rswarm dek v1";
/// Associated data of the sealed TLS key.
const TLS_KEY_AAD: &[u8] = b"rswarm node key v1";
const BEGIN: &str = "-----BEGIN RSWARM SEALED NODE KEY-----";
const END: &str = "-----END RSWARM SEALED NODE KEY-----";

/// `<data-dir>/keys`.
pub(crate) fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

/// Whether the node's keys are locked (autolock on: no KEK on disk).
pub(crate) fn is_locked(data_dir: &Path) -> bool {
    let dir = keys_dir(data_dir);
    finish_autolock_off(&dir);
    dir.join(DEK_FILE).exists() && !dir.join(KEK_FILE).exists()
}

/// Completes an interrupted "autolock off": a `kek.new` that opens the DEK
/// becomes the KEK.
fn finish_autolock_off(dir: &Path) {
    let new = dir.join(KEK_FILE).with_extension("new");
    let (Ok(kek), Ok(wrapped)) = (std::fs::read(&new), std::fs::read(dir.join(DEK_FILE))) else {
        return;
    };
    let opens = DataKey::from_bytes(&kek)
        .ok()
        .is_some_and(|k| k.open(DEK_AAD, &wrapped).is_ok());
    if opens {
        let _ = std::fs::rename(&new, dir.join(KEK_FILE));
    }
}

/// The node's DEK: unwrapped from `keys/dek` with `keys/kek`, or made (with a
/// new KEK) on the first start. Not for a locked node ([`is_locked`]).
pub(crate) fn load_or_create_dek(data_dir: &Path) -> anyhow::Result<DataKey> {
    let dir = keys_dir(data_dir);
    let (kek_path, dek_path) = (dir.join(KEK_FILE), dir.join(DEK_FILE));
    if dek_path.exists() {
        let kek = std::fs::read(&kek_path)
            .with_context(|| format!("reading the key-encrypting key {}", kek_path.display()))?;
        let kek = DataKey::from_bytes(&kek)
            .map_err(|e| anyhow!("the key-encrypting key {}: {e}", kek_path.display()))?;
        let wrapped =
            std::fs::read(&dek_path).with_context(|| format!("reading {}", dek_path.display()))?;
        let raw = kek
            .open(DEK_AAD, &wrapped)
            .map_err(|e| anyhow!("unwrapping the data key {}: {e}", dek_path.display()))?;
        return DataKey::from_bytes(&raw)
            .map_err(|e| anyhow!("the data key {}: {e}", dek_path.display()));
    }
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("creating {}", dir.display()))?;
    let kek = DataKey::generate().map_err(|e| anyhow!("making a key-encrypting key: {e}"))?;
    let dek = DataKey::generate().map_err(|e| anyhow!("making a data key: {e}"))?;
    let wrapped = kek
        .seal(DEK_AAD, dek.as_bytes())
        .map_err(|e| anyhow!("wrapping the data key: {e}"))?;
    // The KEK first: a DEK file without its KEK would lock the node out.
    write_private(&kek_path, kek.as_bytes())?;
    write_private(&dek_path, &wrapped)?;
    Ok(dek)
}

/// A new unlock key: `SWMKEY-1-` and 32 random bytes in base64, as Docker's.
fn new_unlock_key() -> anyhow::Result<(String, DataKey)> {
    let kek = DataKey::generate().map_err(|e| anyhow!("making an unlock key: {e}"))?;
    let text = format!(
        "{UNLOCK_PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(kek.as_bytes())
    );
    Ok((text, kek))
}

/// The KEK an unlock key stands for; `None` if it is not one.
fn parse_unlock_key(text: &str) -> Option<DataKey> {
    let b64 = text.trim().strip_prefix(UNLOCK_PREFIX)?;
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(b64)
        .ok()?;
    DataKey::from_bytes(&raw).ok()
}

/// Unwraps the DEK of a locked node with `unlock_key`; the node stays locked
/// on disk (the KEK is never written).
pub(crate) fn unlock(data_dir: &Path, unlock_key: &str) -> anyhow::Result<DataKey> {
    let dek_path = keys_dir(data_dir).join(DEK_FILE);
    let kek = parse_unlock_key(unlock_key).ok_or_else(|| anyhow!(INVALID_KEY))?;
    let wrapped =
        std::fs::read(&dek_path).with_context(|| format!("reading {}", dek_path.display()))?;
    let raw = kek
        .open(DEK_AAD, &wrapped)
        .map_err(|_| anyhow!(INVALID_KEY))?;
    DataKey::from_bytes(&raw).map_err(|e| anyhow!("the data key {}: {e}", dek_path.display()))
}

/// The current unlock key, if autolock is on.
pub(crate) fn current_unlock_key(data_dir: &Path, dek: &DataKey) -> anyhow::Result<Option<String>> {
    let p = keys_dir(data_dir).join(UNLOCK_KEY_FILE);
    let sealed = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let clear = dek
        .open(UNLOCK_KEY_AAD, &sealed)
        .map_err(|e| anyhow!("{}: {e}", p.display()))?;
    Ok(Some(String::from_utf8_lossy(&clear).into_owned()))
}

/// Turns autolock on (a new unlock key wraps the DEK, the KEK file goes;
/// also how the key is rotated) or off (a new KEK file wraps it). Gives the
/// new unlock key when on.
pub(crate) fn set_autolock(
    data_dir: &Path,
    dek: &DataKey,
    on: bool,
) -> anyhow::Result<Option<String>> {
    if on {
        let key = new_unlock_key_text()?;
        set_unlock_key(data_dir, dek, Some(&key))?;
        Ok(Some(key))
    } else {
        set_unlock_key(data_dir, dek, None)?;
        Ok(None)
    }
}

/// A new unlock key: `SWMKEY-1-` and 32 random bytes in base64, as Docker's.
pub(crate) fn new_unlock_key_text() -> anyhow::Result<String> {
    Ok(new_unlock_key()?.0)
}

/// Wraps the DEK with the KEK `key` stands for (autolock on with that key;
/// the KEK file goes), or with a new KEK file (`None`: autolock off). The
/// cluster's unlock key is applied to every manager this way.
pub(crate) fn set_unlock_key(
    data_dir: &Path,
    dek: &DataKey,
    key: Option<&str>,
) -> anyhow::Result<()> {
    let dir = keys_dir(data_dir);
    let (kek_path, dek_path, key_path) = (
        dir.join(KEK_FILE),
        dir.join(DEK_FILE),
        dir.join(UNLOCK_KEY_FILE),
    );
    if let Some(text) = key {
        let kek = parse_unlock_key(text).ok_or_else(|| anyhow!("not an unlock key"))?;
        let sealed_text = dek
            .seal(UNLOCK_KEY_AAD, text.as_bytes())
            .map_err(|e| anyhow!("sealing the unlock key: {e}"))?;
        write_private(&key_path, &sealed_text)?;
        let wrapped = kek
            .seal(DEK_AAD, dek.as_bytes())
            .map_err(|e| anyhow!("wrapping the data key: {e}"))?;
        write_private(&dek_path, &wrapped)?;
        match std::fs::remove_file(&kek_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", kek_path.display())),
        }
        Ok(())
    } else {
        let kek = DataKey::generate().map_err(|e| anyhow!("making a key-encrypting key: {e}"))?;
        let wrapped = kek
            .seal(DEK_AAD, dek.as_bytes())
            .map_err(|e| anyhow!("wrapping the data key: {e}"))?;
        // `kek.new`, then the DEK it opens, then the rename: a crash before
        // the DEK is replaced leaves the unlock key working, one after it is
        // finished by `finish_autolock_off` on the next start.
        write_private(&kek_path.with_extension("new"), kek.as_bytes())?;
        write_private(&dek_path, &wrapped)?;
        std::fs::rename(kek_path.with_extension("new"), &kek_path)
            .with_context(|| format!("renaming {}", kek_path.display()))?;
        let _ = std::fs::remove_file(&key_path);
        Ok(())
    }
}

/// Writes `data` to `path` through a temporary file, mode 0600, fsynced.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| f.write_all(data))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", path.display()))
}

/// The TLS key PEM sealed by `dek`, armored.
pub(crate) fn seal_key_pem(dek: &DataKey, key_pem: &str) -> anyhow::Result<String> {
    let sealed = dek
        .seal(TLS_KEY_AAD, key_pem.as_bytes())
        .map_err(|e| anyhow!("encrypting the node key: {e}"))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(sealed);
    let mut out = String::with_capacity(b64.len() + 100);
    out.push_str(BEGIN);
    out.push('\n');
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    Ok(out)
}

/// The clear TLS key PEM of a sealed block; `None` when `text` is not sealed (a
/// key written in clear by an older version).
pub(crate) fn open_key_pem(dek: &DataKey, text: &str) -> anyhow::Result<Option<String>> {
    let Some(rest) = text.trim().strip_prefix(BEGIN) else {
        return Ok(None);
    };
    let body = rest
        .strip_suffix(END)
        .ok_or_else(|| anyhow!("the sealed node key has no end line"))?;
    let b64: String = body.split_whitespace().collect();
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| anyhow!("the sealed node key is not base64: {e}"))?;
    let clear = dek
        .open(TLS_KEY_AAD, &sealed)
        .map_err(|e| anyhow!("decrypting the node key: {e}"))?;
    String::from_utf8(clear)
        .map(Some)
        .map_err(|_| anyhow!("the decrypted node key is not text"))
}

/// A `--tlskey` file for the CLI: a clear key as is; a node's sealed
/// `certificates/node.key` opened with the DEK of its data dir (root reads
/// `<data-dir>/keys/`), unless the node is locked.
pub(crate) fn open_node_key_file(path: &Path, text: String) -> anyhow::Result<String> {
    if !text.trim_start().starts_with(BEGIN) {
        return Ok(text);
    }
    let data_dir = path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("{}: a sealed node key outside a data dir", path.display()))?;
    if is_locked(data_dir) {
        anyhow::bail!(
            "{} is sealed and its node is locked (autolock): unlock it first",
            path.display()
        );
    }
    if !keys_dir(data_dir).join(DEK_FILE).exists() {
        anyhow::bail!(
            "{} is sealed and {} has no keys to open it",
            path.display(),
            data_dir.display()
        );
    }
    let dek = load_or_create_dek(data_dir)?;
    open_key_pem(&dek, &text)?.ok_or_else(|| anyhow!("{}: not a sealed node key", path.display()))
}

/// Saves the node's certificates with its key sealed by `dek`.
pub(crate) fn save_tls(dir: &Path, dek: &DataKey, node_tls: &NodeTls) -> anyhow::Result<()> {
    let mut sealed = node_tls.clone();
    sealed.key_pem = seal_key_pem(dek, &node_tls.key_pem)?;
    sealed
        .save(dir)
        .with_context(|| format!("saving certificates in {}", dir.display()))
}

/// Loads the node's certificates and opens its key; a key found in clear (an
/// older version's) is sealed on the spot.
pub(crate) fn load_tls(dir: &Path, dek: &DataKey) -> anyhow::Result<NodeTls> {
    let mut node_tls = NodeTls::load(dir)
        .with_context(|| format!("loading certificates from {}", dir.display()))?;
    match open_key_pem(dek, &node_tls.key_pem)
        .with_context(|| format!("in {}", dir.join(NodeTls::KEY_FILE).display()))?
    {
        Some(clear) => node_tls.key_pem = clear,
        None => save_tls(dir, dek, &node_tls)?,
    }
    Ok(node_tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dek_survives_a_restart_and_its_files_are_private() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let first = load_or_create_dek(tmp.path())?;
        let again = load_or_create_dek(tmp.path())?;
        assert_eq!(first.as_bytes(), again.as_bytes());
        for f in [KEK_FILE, DEK_FILE] {
            let p = keys_dir(tmp.path()).join(f);
            assert_eq!(std::fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        }
        let wrapped = std::fs::read(keys_dir(tmp.path()).join(DEK_FILE))?;
        assert!(!wrapped
            .windows(first.as_bytes().len())
            .any(|w| w == first.as_bytes()));
        Ok(())
    }

    #[test]
    fn autolock_locks_unlocks_rotates_and_turns_off() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dek = load_or_create_dek(tmp.path())?;
        assert!(!is_locked(tmp.path()));
        let key = set_autolock(tmp.path(), &dek, true)?.ok_or_else(|| anyhow!("no key"))?;
        assert!(key.starts_with("SWMKEY-1-"));
        assert!(is_locked(tmp.path()));
        assert_eq!(
            current_unlock_key(tmp.path(), &dek)?.as_deref(),
            Some(&*key)
        );
        let wrong = new_unlock_key()?.0;
        assert_eq!(
            unlock(tmp.path(), &wrong)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(INVALID_KEY.to_string())
        );
        assert!(unlock(tmp.path(), "nonsense").is_err());
        assert_eq!(unlock(tmp.path(), &key)?.as_bytes(), dek.as_bytes());
        let rotated = set_autolock(tmp.path(), &dek, true)?.ok_or_else(|| anyhow!("no key"))?;
        assert!(unlock(tmp.path(), &key).is_err());
        assert_eq!(unlock(tmp.path(), &rotated)?.as_bytes(), dek.as_bytes());
        set_autolock(tmp.path(), &dek, false)?;
        assert!(!is_locked(tmp.path()));
        assert_eq!(load_or_create_dek(tmp.path())?.as_bytes(), dek.as_bytes());
        assert_eq!(current_unlock_key(tmp.path(), &dek)?, None);
        Ok(())
    }

    #[test]
    fn a_sealed_tls_key_round_trips_and_shows_no_pem() -> anyhow::Result<()> {
        let dek = DataKey::generate()?;
        let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n";
        let sealed = seal_key_pem(&dek, pem)?;
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_eq!(open_key_pem(&dek, &sealed)?.as_deref(), Some(pem));
        assert_eq!(open_key_pem(&dek, pem)?, None);
        assert!(open_key_pem(&DataKey::generate()?, &sealed).is_err());
        Ok(())
    }
}
