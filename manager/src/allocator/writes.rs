//! Writing services' VIPs and nodes' ingress addresses: version-checked
//! puts in chunks, so that no one else's fields are overwritten. A refused
//! write frees the addresses it was given, re-reads the object and leaves it
//! to the next pass. (Tasks are written in the loop's batches instead.)

use rswarm_proto::types::{Node, Service, Version};
use rswarm_raft::{Op, Store, StoreError};

use super::state::{Held, Owner};
use super::{account, account_node, View};
use crate::error::ManagerError;
use crate::objects;
use crate::orchestrator::view::WRITE_CHUNK;
use crate::orchestrator::STORE_ERROR_PAUSE;

/// An object the allocator writes addresses into, other than a task: a
/// service (its VIPs) or a node (its ingress address). Both are written
/// the same way by [`write_updates`].
pub(super) trait Holder: Sized {
    /// What it is, for logs.
    const WHAT: &'static str;
    /// Its store kind.
    const KIND: &'static str;
    fn id(&self) -> &str;
    fn owner(id: &str) -> Owner;
    /// The version-checked put of this copy.
    fn put(&self) -> Op;
    /// Takes the written copy (stored at `index`) into the view and
    /// accounts it.
    fn written(self, view: &mut View, index: u64);
    /// Puts the store's copy back into the view (after a refused write) and
    /// accounts it.
    fn reread(store: &Store, view: &mut View, id: &str);
    /// Has the next pass look at it again.
    fn redo(view: &mut View, id: String);
}

impl Holder for Service {
    const WHAT: &'static str = "service VIPs";
    const KIND: &'static str = objects::KIND_SERVICE;

    fn id(&self) -> &str {
        &self.id
    }

    fn owner(id: &str) -> Owner {
        Owner::Service(id.to_string())
    }

    fn put(&self) -> Op {
        objects::put(self)
    }

    fn written(mut self, view: &mut View, index: u64) {
        self.meta.get_or_insert_with(Default::default).version = Some(Version { index });
        let id = self.id.clone();
        view.services.insert(id.clone(), self);
        account(view, &id);
    }

    fn reread(store: &Store, view: &mut View, id: &str) {
        match objects::get::<Service>(store, id) {
            Ok(Some(s)) => {
                view.services.insert(id.to_string(), s);
            }
            Ok(None) => {
                view.services.remove(id);
            }
            Err(e) => {
                tracing::warn!(service = %id, error = %e, "cannot re-read a service after a refused write");
            }
        }
        account(view, id);
    }

    fn redo(view: &mut View, id: String) {
        view.observer.dirty_services.insert(id);
    }
}

impl Holder for Node {
    const WHAT: &'static str = "node ingress addresses";
    const KIND: &'static str = objects::KIND_NODE;

    fn id(&self) -> &str {
        &self.id
    }

    fn owner(id: &str) -> Owner {
        Owner::Node(id.to_string())
    }

    fn put(&self) -> Op {
        // Guarded by the version the view read, so a newer copy (the
        // dispatcher's status, a `node update`'s spec) is never overwritten.
        // A copy without a version (never the case for one read from the
        // store) is refused rather than written blindly.
        let mut op = objects::put(self);
        if let Op::Put { expect_version, .. } = &mut op {
            expect_version.get_or_insert(0);
        }
        op
    }

    fn written(mut self, view: &mut View, index: u64) {
        self.meta.get_or_insert_with(Default::default).version = Some(Version { index });
        let id = self.id.clone();
        view.nodes.insert(id.clone(), self);
        account_node(view, &id);
    }

    fn reread(store: &Store, view: &mut View, id: &str) {
        match objects::get::<Node>(store, id) {
            Ok(Some(n)) => {
                view.nodes.insert(id.to_string(), n);
            }
            Ok(None) => {
                view.nodes.remove(id);
            }
            Err(e) => {
                tracing::warn!(node = %id, error = %e, "cannot re-read a node after a refused write");
            }
        }
        account_node(view, id);
    }

    fn redo(view: &mut View, id: String) {
        view.observer.dirty_nodes.insert(id);
    }
}

/// Writes services or nodes with new addresses, in chunks. One whose write
/// conflicts (someone else wrote it first) is re-read, its new addresses
/// freed, and left for the next pass (returns true then).
pub(super) async fn write_updates<H: Holder>(
    store: &Store,
    view: &mut View,
    updates: Vec<(H, Vec<Held>)>,
) -> Result<bool, ManagerError> {
    let mut retry = false;
    let mut rest = updates.into_iter();
    loop {
        let mut chunk: Vec<(H, Vec<Held>)> = rest.by_ref().take(WRITE_CHUNK).collect();
        if chunk.is_empty() {
            return Ok(retry);
        }
        while !chunk.is_empty() {
            if !store.is_leader() {
                forget(view, chunk.into_iter().chain(rest.by_ref()));
                return Err(StoreError::NoLeader.into());
            }
            let ops = chunk.iter().map(|(h, _)| h.put()).collect();
            match store.write(ops).await {
                Ok(index) => {
                    for (h, _) in chunk.drain(..) {
                        h.written(view, index);
                    }
                }
                Err(StoreError::Conflict { kind, id, .. })
                    if kind == H::KIND && chunk.iter().any(|(h, _)| h.id() == id) =>
                {
                    tracing::debug!(%kind, %id, "write conflict; re-reading it");
                    let at = chunk.iter().position(|(h, _)| h.id() == id);
                    if let Some(at) = at {
                        let refused = chunk.remove(at);
                        forget(view, std::iter::once(refused));
                    }
                    H::reread(store, view, &id);
                    retry = true;
                }
                Err(e @ (StoreError::NoLeader | StoreError::Shutdown)) => {
                    forget(view, chunk.into_iter().chain(rest.by_ref()));
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(error = %e, what = H::WHAT, "allocator could not write addresses; retrying in {STORE_ERROR_PAUSE:?}");
                    forget(view, chunk.into_iter().chain(rest.by_ref()));
                    tokio::time::sleep(STORE_ERROR_PAUSE).await;
                    return Ok(true);
                }
            }
        }
    }
}

/// Frees the addresses allocated for updates that were not written, and has
/// the next pass look at those objects again.
fn forget<H: Holder>(view: &mut View, updates: impl Iterator<Item = (H, Vec<Held>)>) {
    for (h, fresh) in updates {
        let owner = H::owner(h.id());
        for held in &fresh {
            view.observer.release(held, &owner);
        }
        H::redo(view, h.id().to_string());
    }
}
