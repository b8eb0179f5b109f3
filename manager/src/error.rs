//! The manager's error type and its mapping to gRPC statuses.

use rswarm_raft::StoreError;

#[derive(thiserror::Error, Debug)]
pub enum ManagerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A user's spec write was based on a spec someone else has changed since.
    #[error("update out of sequence: the spec of {kind} {id} was changed since it was read (spec version {actual}, the update was based on {expected}); read it again and retry")]
    OutOfSequence {
        kind: &'static str,
        id: String,
        expected: u64,
        actual: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("certificate authority: {0}")]
    Ca(String),
    #[error("{0}")]
    Internal(String),
}

impl From<ManagerError> for tonic::Status {
    fn from(e: ManagerError) -> Self {
        let msg = e.to_string();
        match e {
            ManagerError::NotFound(_) => tonic::Status::not_found(msg),
            ManagerError::InvalidArgument(_) => tonic::Status::invalid_argument(msg),
            ManagerError::AlreadyExists(_) => tonic::Status::already_exists(msg),
            ManagerError::FailedPrecondition(_) => tonic::Status::failed_precondition(msg),
            ManagerError::PermissionDenied(_) => tonic::Status::permission_denied(msg),
            ManagerError::Unauthenticated(_) => tonic::Status::unauthenticated(msg),
            ManagerError::OutOfSequence { .. } => tonic::Status::aborted(msg),
            ManagerError::Store(StoreError::NoLeader) => tonic::Status::unavailable(msg),
            ManagerError::Store(StoreError::Conflict { .. }) => tonic::Status::aborted(msg),
            ManagerError::Store(_) | ManagerError::Ca(_) | ManagerError::Internal(_) => {
                tonic::Status::internal(msg)
            }
        }
    }
}
