//! The replicated cluster store (being built).
