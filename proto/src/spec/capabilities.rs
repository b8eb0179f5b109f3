//! Linux capability names: the one list (the agent's runtime grants from it
//! for `ALL`), Docker's normalisation of what users type (`net_admin` →
//! `CAP_NET_ADMIN`) and how `--cap-add`/`--cap-drop` combine.

use std::collections::BTreeSet;

use super::ValueError;

/// Every capability Linux has, by its `CAP_` name.
pub const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability name as Docker normalises it (`net_admin` → `CAP_NET_ADMIN`,
/// `all` → `ALL`), refused when Linux has no such capability.
pub fn normalize_capability(value: &str) -> Result<String, ValueError> {
    let upper = value.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(ValueError(format!("unknown capability: {name:?}")))
    }
}

/// Docker's `EffectiveCapAddCapDrop` over normalised names: `ALL` trumps
/// the other names in its list, adding wins over dropping the same name,
/// both lists sorted.
pub fn effective_capabilities(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let only_all = |set: BTreeSet<String>| {
        if set.contains("ALL") {
            BTreeSet::from(["ALL".to_string()])
        } else {
            set
        }
    };
    let add = only_all(add.iter().cloned().collect());
    let drop = only_all(drop.iter().cloned().collect());
    let drop = drop.into_iter().filter(|c| !add.contains(c)).collect();
    (add.into_iter().collect(), drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities() {
        assert_eq!(
            normalize_capability("net_admin"),
            Ok("CAP_NET_ADMIN".into())
        );
        assert_eq!(
            normalize_capability("CAP_SYS_TIME"),
            Ok("CAP_SYS_TIME".into())
        );
        assert_eq!(normalize_capability("all"), Ok("ALL".into()));
        assert_eq!(
            normalize_capability("fly"),
            Err(ValueError::new("unknown capability: \"CAP_FLY\""))
        );
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            effective_capabilities(&s(&["CAP_NET_ADMIN", "ALL"]), &s(&["CAP_CHOWN"])),
            (s(&["ALL"]), s(&["CAP_CHOWN"]))
        );
        assert_eq!(
            effective_capabilities(&s(&["CAP_NET_ADMIN"]), &s(&["CAP_NET_ADMIN", "CAP_KILL"])),
            (s(&["CAP_NET_ADMIN"]), s(&["CAP_KILL"]))
        );
    }
}
