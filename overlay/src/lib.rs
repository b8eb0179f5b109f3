//! The data plane: overlay networks (VXLAN, bridges, veths), service VIPs and
//! the ingress routing mesh in nftables, and the embedded DNS server.
//!
//! Nothing lives here yet: the cluster foundation has no data plane. The
//! networking issue fills it in.
pub mod dns;
