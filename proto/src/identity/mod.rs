//! Node identity shared by both ends of a connection (being built).
