//! The node's guard of encrypted networks: table `ip rswarm_wg` in the node's
//! namespace lists the VNIs of the encrypted networks that have a sandbox
//! here, and drops their VXLAN packets unless they came out of the WireGuard
//! tunnel (see [`crate::nft`]). Without it anyone on the wire could inject
//! clear VXLAN frames into an encrypted network: the kernel's VXLAN socket
//! (UDP 4789 on any address) hands a packet to the device of its VNI,
//! whatever it arrived on.
//!
//! Which networks are encrypted is read back from the kernel once (each
//! sandbox's `vxlan0`: a source address in the tunnel pool), so a restarted
//! daemon rebuilds the same list; afterwards `ensure_network` and
//! `remove_network` keep it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;

use netlink_packet_route::link::InfoKind;

use super::Overlay;
use crate::addr::{self, check_id, SANDBOX_PREFIX};
use crate::error::OverlayError;
use crate::links::Netlink;
use crate::netns;
use crate::nft;
use crate::vxlan::VXLAN;
use crate::wireguard::TUNNEL_POOL;

/// What the guard knows: encrypted networks by ID (their VNI), and the VNIs
/// last applied.
#[derive(Default)]
pub(super) struct Guard {
    networks: Option<BTreeMap<String, u32>>,
    applied: Option<BTreeSet<u32>>,
}

impl Overlay {
    /// Record that network `id` is encrypted with `vni` (or not, `None`) and
    /// bring table `ip rswarm_wg` in line. Called with the overlay's lock held.
    pub(super) async fn guard_encrypted(
        &self,
        id: &str,
        vni: Option<u32>,
    ) -> Result<(), OverlayError> {
        let known = self.encrypted_lock().networks.clone();
        let mut networks = match known {
            Some(n) => n,
            None => self.read_encrypted().await?,
        };
        match vni {
            Some(v) => networks.insert(id.to_string(), v),
            None => networks.remove(id),
        };
        let want: BTreeSet<u32> = networks.values().copied().collect();
        let applied = self.encrypted_lock().applied.clone();
        if applied.as_ref() != Some(&want) {
            let vnis = want.clone();
            let result = self
                .in_node_ns_blocking("apply the guard of encrypted networks", move |path| {
                    nft::apply_encrypted_guard(path, &vnis)
                })
                .await;
            match result {
                Ok(()) => {}
                // Deleting a table that is not needed: a node with clear
                // networks only must not fail over it (nor need `nft`).
                Err(e) if want.is_empty() => {
                    tracing::warn!(error = %e, "cannot remove table ip rswarm_wg");
                }
                Err(e) => return Err(e),
            }
        }
        let mut guard = self.encrypted_lock();
        guard.networks = Some(networks);
        guard.applied = Some(want);
        Ok(())
    }

    fn encrypted_lock(&self) -> std::sync::MutexGuard<'_, Guard> {
        self.encrypted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The encrypted networks that have a sandbox here, from the kernel.
    async fn read_encrypted(&self) -> Result<BTreeMap<String, u32>, OverlayError> {
        let mut out = BTreeMap::new();
        let entries = std::fs::read_dir(&self.state_dir)
            .map_err(|e| OverlayError::io(format!("read {}", self.state_dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix(SANDBOX_PREFIX) else {
                continue;
            };
            if check_id("network id", id).is_err() || !netns::is_live(&entry.path()) {
                continue;
            }
            let fd = Self::open_ns(&entry.path())?;
            let nl = Netlink::open(fd.as_fd(), format!("the sandbox of network {id}"))?;
            if let Some(vx) = nl.link(VXLAN).await? {
                let encrypted = vx
                    .vxlan_local
                    .is_some_and(|ip| addr::contains(TUNNEL_POOL.0, TUNNEL_POOL.1, ip));
                if let (true, Some(vni), true) = (vx.is(InfoKind::Vxlan), vx.vni, encrypted) {
                    out.insert(id.to_string(), vni);
                }
            }
        }
        Ok(out)
    }
}
