//! Reading the `-c` files of `stack config` and `stack deploy`: each file
//! (or stdin, once) bounded in size, and the folder relative paths and the
//! default `.env` are taken against.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use crate::compose::Source;

/// Bounds one Compose file (and stdin).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads every `-c` file (`-` is stdin, at most once); the folder relative
/// paths are taken against is the first file's (the current one for stdin).
pub(super) fn read_sources(files: &[String]) -> anyhow::Result<(Vec<Source>, PathBuf)> {
    let mut sources = Vec::new();
    let mut dir = None;
    let mut stdin_used = false;
    for f in files {
        let text = if f == "-" {
            if stdin_used {
                bail!("-c -: standard input can be read only once");
            }
            stdin_used = true;
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_FILE_BYTES + 1)
                .read_to_string(&mut text)
                .context("reading the Compose file from standard input")?;
            text
        } else {
            let path = Path::new(f);
            let len = std::fs::metadata(path)
                .with_context(|| format!("{f}: cannot read the Compose file"))?
                .len();
            if len > MAX_FILE_BYTES {
                bail!(
                    "{f}: a Compose file is limited to {} MiB",
                    MAX_FILE_BYTES >> 20
                );
            }
            std::fs::read_to_string(path)
                .with_context(|| format!("{f}: cannot read the Compose file"))?
        };
        if text.len() as u64 > MAX_FILE_BYTES {
            bail!(
                "{f}: a Compose file is limited to {} MiB",
                MAX_FILE_BYTES >> 20
            );
        }
        if dir.is_none() {
            let d = if f == "-" {
                std::env::current_dir().context("the current directory")?
            } else {
                let abs = std::fs::canonicalize(f)
                    .with_context(|| format!("{f}: cannot read the Compose file"))?;
                abs.parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("/"))
            };
            dir = Some(d);
        }
        sources.push(Source {
            name: if f == "-" {
                "(stdin)".into()
            } else {
                f.clone()
            },
            text,
        });
    }
    let dir = dir.ok_or_else(|| anyhow!("no Compose file given (-c FILE)"))?;
    Ok((sources, dir))
}
