//! The cluster root CA: creation and signing of node certificates (being built).
