//! What the store refuses before it proposes anything: an empty write batch, an
//! object kind that is empty or holds NUL, an empty id, and a manager address
//! that is not `host:port`.

use super::{Op, StoreError};

/// A manager's Raft address must be `host:port` (found by the fuzzing harness:
/// an empty one was added as a learner that could never be reached).
pub(super) fn check_member_addr(addr: &str) -> Result<(), StoreError> {
    let valid = addr.len() <= 255
        && addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if valid {
        Ok(())
    } else {
        Err(StoreError::Membership(format!(
            "manager address {addr:?} is not host:port"
        )))
    }
}

pub(super) fn validate(ops: &[Op]) -> Result<(), StoreError> {
    if ops.is_empty() {
        return Err(StoreError::InvalidOp("empty write batch".into()));
    }
    for op in ops {
        if op.kind().is_empty() || op.kind().contains('\0') {
            return Err(StoreError::InvalidOp(format!(
                "object kind {:?} must be non-empty and without NUL",
                op.kind()
            )));
        }
        if op.id().is_empty() {
            return Err(StoreError::InvalidOp(format!(
                "{} with an empty id",
                op.kind()
            )));
        }
    }
    Ok(())
}
