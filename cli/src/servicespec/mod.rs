//! Service specs from what a user types. The `service create` flags
//! (`flags`: what was typed) become a list of edits (`edits`: what it means)
//! applied to Docker's defaults, and the finished spec is checked by the spec
//! library's one `validate` (`rswarm_proto::spec`), the same the control API
//! runs as the final word.
//!
//! - `container`: env (`-e`, `--env-file`), labels, ulimits, sysctls, stop
//!   signals, `--entrypoint` words.
//! - `policy`: service mode, restart policy, update and rollback config.
//! - `flags`: the `service create` flags (clap) and the edits they mean;
//!   `shared`: the flags `service update` takes as they are.
//! - `update`: the `service update` flags (the `*-add`/`*-rm` pairs,
//!   `--image`, `--force`, ...) as edits of the current spec; `removals`:
//!   what an `*-rm` flag takes out.
//! - `edits`: `SpecEdit`, `defaults` and `apply`.
//!
//! The parsers of values shared with the control API, the scheduler and the
//! agent (image references, units, ports, mounts, constraints, capabilities)
//! live in `rswarm_proto::spec`; `reference`, `units` and `mounts` are
//! re-exported here for this crate's commands and tables. Nothing here
//! talks to a daemon: a spec is parsed and validated completely before any
//! call that stores anything.

pub mod container;
pub mod edits;
pub mod flags;
pub mod policy;
pub mod removals;
pub mod shared;
pub mod update;

#[cfg(test)]
mod agreement;

pub use flags::ServiceFlags;
pub use rswarm_proto::spec::{mounts, reference, units, ValueError};

/// Why a service spec is refused. The message is the line the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// One flag's value does not parse (pflag's wording, as Docker prints it).
    #[error("invalid argument \"{value}\" for \"{flag}\" flag: {reason}")]
    Flag {
        flag: String,
        value: String,
        reason: ValueError,
    },
    /// The values parse but do not make a valid service together.
    #[error("{0}")]
    Invalid(String),
}

impl SpecError {
    pub fn invalid(message: impl Into<String>) -> SpecError {
        SpecError::Invalid(message.into())
    }

    /// Ties a value's error to the flag it came from, e.g. `-p, --publish`.
    pub fn flag(flag: &str, value: &str, reason: ValueError) -> SpecError {
        SpecError::Flag {
            flag: flag.to_string(),
            value: value.to_string(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_errors_read_like_pflag() {
        let e = SpecError::flag(
            "--limit-memory",
            "64X",
            ValueError::new("invalid size: '64X'"),
        );
        assert_eq!(
            e.to_string(),
            "invalid argument \"64X\" for \"--limit-memory\" flag: invalid size: '64X'"
        );
    }
}
