//! What `secret` and `config` share on the client side: the value read
//! from a file or standard input (bounded: Docker's 500 KiB), `--label`
//! values, the `ls` filters, and how `rm` of several names reports.

use std::collections::HashMap;
use std::io::Read;

use rswarm_proto::spec::secrets::{check_spec, Kind, MAX_DATA_BYTES};
use rswarm_proto::types::Annotations;

use crate::format::stored_files::{parse_filter, Filter};

/// `NAME` and its value from `FILE` (`-`: standard input), checked by the
/// spec rules (name, labels, size) before anything is sent.
pub fn read_spec(
    kind: Kind,
    name: &str,
    file: &str,
    labels: &[String],
) -> anyhow::Result<(Annotations, Vec<u8>)> {
    let data = if file == "-" {
        read_bounded(std::io::stdin().lock(), kind, "standard input")?
    } else {
        let f = std::fs::File::open(file).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            anyhow::anyhow!("open {file}: {why}")
        })?;
        read_bounded(f, kind, file)?
    };
    let annotations = Annotations {
        name: name.to_string(),
        labels: parse_labels(labels)?,
    };
    check_spec(kind, Some(&annotations), &data).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((annotations, data))
}

/// Reads at most one byte more than the limit, so a huge input is refused
/// without being read whole.
fn read_bounded(r: impl Read, kind: Kind, from: &str) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    r.take(MAX_DATA_BYTES as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| anyhow::anyhow!("error reading {} from {from}: {e}", kind.word()))?;
    Ok(data)
}

/// `--label k=v` (or `k`, an empty value), as Docker's `ConvertKVStringsToMap`.
pub fn parse_labels(items: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
        if k.is_empty() {
            anyhow::bail!("invalid argument {i:?} for \"-l, --label\" flag: empty key");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The `--filter` values of `ls`.
pub fn parse_filters(items: &[String]) -> anyhow::Result<Vec<Filter>> {
    items
        .iter()
        .map(|f| parse_filter(f).map_err(|e| anyhow::anyhow!("{e}")))
        .collect()
}

/// Docker's `rm` of several: each removed one is printed as given, each
/// failure on standard error, and the command fails if any did.
pub fn report_removals(results: Vec<(String, anyhow::Result<()>)>) -> anyhow::Result<()> {
    let mut errors = vec![];
    for (given, r) in results {
        match r {
            Ok(()) => println!("{given}"),
            Err(e) => errors.push(e),
        }
    }
    let last = errors.pop();
    for e in errors {
        eprintln!("{e}");
    }
    match last {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_bounded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v");
        std::fs::write(&p, b"hunter2").unwrap();
        let path = p.to_string_lossy();
        let (a, data) =
            read_spec(Kind::Secret, "pw", &path, &["env=prod".into(), "x".into()]).unwrap();
        assert_eq!(data, b"hunter2");
        assert_eq!(a.labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(a.labels.get("x").map(String::as_str), Some(""));
        std::fs::write(&p, vec![b'x'; MAX_DATA_BYTES + 10]).unwrap();
        assert_eq!(
            read_spec(Kind::Secret, "pw", &path, &[])
                .unwrap_err()
                .to_string(),
            "secret data must be larger than 0 and less than 500 KiB"
        );
        std::fs::write(&p, b"").unwrap();
        assert_eq!(
            read_spec(Kind::Config, "c", &path, &[])
                .unwrap_err()
                .to_string(),
            "config data must be larger than 0 and less than 500 KiB"
        );
        let missing = dir.path().join("nope");
        let e = read_spec(Kind::Secret, "pw", &missing.to_string_lossy(), &[]).unwrap_err();
        assert!(
            e.to_string().ends_with("nope: no such file or directory"),
            "{e}"
        );
        std::fs::write(&p, b"v").unwrap();
        let e = read_spec(Kind::Secret, "-bad", &path, &[]).unwrap_err();
        assert!(e.to_string().starts_with("invalid name \"-bad\""), "{e}");
        assert!(parse_labels(&["=v".into()]).is_err());
    }
}
