//! The built-in web dashboard a manager serves (`rswarm daemon
//! --dashboard-addr`, default 127.0.0.1:9324): one page, its HTML, CSS and
//! plain JavaScript compiled into the binary (`assets/`; nothing is loaded
//! from anywhere else), polling one JSON document (`view`) and the manager's
//! newest cluster events (`/api/events`, those of `rswarm events`) every second and
//! offering the daily actions (`actions`: scale, force-update, rollback,
//! node availability) through the Control API's own code.
//!
//! Access: every request needs the cluster's dashboard token (`token`,
//! printed by `rswarm dashboard token`), as `Authorization: Bearer TOKEN`
//! or the `rswarm_dashboard` cookie the page's login form sets
//! (`HttpOnly`, `SameSite=Strict`). Without it every path answers 401 and
//! shows only the login form. Actions are POSTs with a JSON body (a type a
//! cross-site form cannot send), bounded in size.
//!
//! The listener is bound by the daemon on every node; the answers come from
//! the node's manager through [`StoreSource`], so a node promoted later
//! serves the dashboard at once and one demoted answers 503.

mod actions;
mod server;
pub mod token;
mod view;

#[cfg(test)]
mod tests;

pub use server::{router, serve, StoreSource};
