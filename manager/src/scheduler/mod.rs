//! The scheduler: places pending tasks on nodes (being built).
