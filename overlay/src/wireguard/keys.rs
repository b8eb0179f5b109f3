//! WireGuard key pairs: X25519 private keys (generated, kept in a 0600 file,
//! never printed) and their public keys (base64, as `wg` shows them).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroize;

use crate::error::OverlayError;

/// A 32-byte X25519 private key. `Debug` and `Display` never show it; the
/// bytes are zeroed when it is dropped.
pub struct PrivateKey([u8; 32]);

/// A 32-byte X25519 public key. `Debug` and `Display` show it in base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        PrivateKey(self.0)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<hidden>, public {})", self.public_key())
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<private key>")
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// Decode 32 bytes of standard base64 (44 characters, as `wg genkey` prints).
fn decode32(what: &'static str, s: &str, show: bool) -> Result<[u8; 32], OverlayError> {
    let shown = if show { s } else { "<hidden>" };
    let mut bytes = STANDARD
        .decode(s.trim())
        .map_err(|_| OverlayError::invalid(what, shown, "not base64"))?;
    if bytes.len() != 32 {
        let n = bytes.len();
        bytes.zeroize();
        return Err(OverlayError::invalid(
            what,
            shown,
            format!("{n} bytes, a WireGuard key has 32"),
        ));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    bytes.zeroize();
    Ok(out)
}

impl PrivateKey {
    /// A new random key (clamped as `wg genkey` does).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        PrivateKey(bytes)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// The key in base64 (for the UAPI or a key file; never log it).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parse a base64 key. The error never repeats the input.
    pub fn from_base64(s: &str) -> Result<Self, OverlayError> {
        decode32("WireGuard private key", s, false).map(PrivateKey)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Read a key file written by [`PrivateKey::save`]; `None` if there is no
    /// file. A file readable by others than its owner is refused.
    pub fn load(path: &Path) -> Result<Option<Self>, OverlayError> {
        let what = || format!("read the WireGuard key {}", path.display());
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OverlayError::io(what(), e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(OverlayError::invalid(
                "WireGuard key file",
                &path.display().to_string(),
                format!("mode {mode:04o} lets others read it; it must be 0600"),
            ));
        }
        let mut text = std::fs::read_to_string(path).map_err(|e| OverlayError::io(what(), e))?;
        let key = decode32("WireGuard key file", &text, false).map_err(|_| {
            OverlayError::invalid(
                "WireGuard key file",
                &path.display().to_string(),
                "not a base64 32-byte key",
            )
        });
        text.zeroize();
        key.map(|k| Some(PrivateKey(k)))
    }

    /// Write the key to `path` (base64 and a newline), mode 0600, creating its
    /// directory with mode 0700 if needed; atomically (a temporary file in the
    /// same directory, then rename).
    pub fn save(&self, path: &Path) -> Result<(), OverlayError> {
        let what = || format!("write the WireGuard key {}", path.display());
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| OverlayError::io(what(), e))?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "private.key".to_string());
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut text = self.to_base64();
            text.push('\n');
            let written = f.write_all(text.as_bytes());
            text.zeroize();
            written?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(OverlayError::io(what(), e));
        }
        Ok(())
    }
}

impl PublicKey {
    /// The key in base64, as `wg show` prints it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parse a base64 public key.
    pub fn from_base64(s: &str) -> Result<Self, OverlayError> {
        decode32("WireGuard public key", s, true).map(PublicKey)
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        PublicKey(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}
