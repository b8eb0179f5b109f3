//! Orchestrators: services to tasks (being built).
