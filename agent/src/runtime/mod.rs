//! The container runtime: OCI bundles run by runc (being built).
