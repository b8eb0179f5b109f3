//! The agent (being built).
