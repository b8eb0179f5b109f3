//! The manager (being built).
pub mod ca;
