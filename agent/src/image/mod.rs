//! Images: pulls over the OCI distribution API, the content store, unpacked layers (being built).
