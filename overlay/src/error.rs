//! The error type of the overlay data path ([`OverlayError`]).
//!
//! Every failure names what was being done (the network, task or device) so
//! that the agent can log it as it is; the underlying OS or netlink error is
//! kept as the `source`.

use std::io;

/// What went wrong while programming the overlay data path.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// A netlink request was refused by the kernel (or the socket failed).
    #[error("{context}: {source}")]
    Netlink {
        /// What was being done, e.g. "create vxlan0 (VNI 4100) for network abc".
        context: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A system call (namespace, mount, file) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An argument does not parse or is out of range (an ID, a CIDR, an index).
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The network has no sandbox on this node (call `ensure_network` first).
    #[error("overlay network {0} is not set up on this node")]
    NoSuchNetwork(String),
    /// The task has no network namespace (call `create_task_netns` first).
    #[error("task {0} has no network namespace on this node")]
    NoSuchTask(String),
    /// Every address of the gateway bridge's subnet is given to a task.
    #[error("no free address on the gateway bridge ({subnet}) for task {task}: {in_use} in use")]
    GatewayFull {
        /// The task that asked.
        task: String,
        /// The bridge's subnet, `a.b.c.d/len`.
        subnet: String,
        /// How many addresses are taken.
        in_use: usize,
    },
    /// An nftables ruleset could not be applied or removed.
    #[error("{context}: {source}")]
    Nft {
        /// What was being done.
        context: String,
        /// The nftables error (carries `nft`'s own message).
        #[source]
        source: crate::nft::NftError,
    },
    /// The WireGuard device refused or failed an operation.
    #[error("{context}: {reason}")]
    WireGuard {
        /// What was being done, e.g. "set the peers on WireGuard interface rswgab".
        context: String,
        /// Why it failed.
        reason: String,
    },
}

impl OverlayError {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        OverlayError::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn netlink(context: impl Into<String>, source: rtnetlink::Error) -> Self {
        OverlayError::Netlink {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn nft(context: impl Into<String>, source: crate::nft::NftError) -> Self {
        OverlayError::Nft {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        OverlayError::Invalid {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// The kernel's errno carried by a netlink error, if any (positive, e.g. `libc::EEXIST`).
pub(crate) fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => Some(msg.raw_code().abs()),
        _ => None,
    }
}
