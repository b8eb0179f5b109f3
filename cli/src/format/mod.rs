//! Docker-style output for the command-line client: what `rswarm node ls`,
//! `node inspect` and later `service ls` etc. print, byte for byte the way
//! `docker` prints it, so that users' `--format` strings and scripts carry over.
//!
//! - `table`: Docker's tab-writer table printer (one place for column layout).
//! - `template`: Go `text/template`, the part `--format` strings use, over JSON values.
//! - `output`: the `--format` / `--quiet` rules every `ls` and `inspect` shares.
//! - `humanize`: how Docker shows times, sizes and enum words to people.
//! - `nodes`: Node objects in Docker's shapes (`node ls` rows, `node inspect` JSON, `--pretty`).
//! - `services`: Service objects in Docker's shapes (`service ls` rows, `service inspect` JSON, `--pretty`).
//! - `tasks`: task rows for `service ps` / `node ps` (history under ` \_ `, "Running 3 seconds ago").
//! - `task_inspect`: a task in Docker's `inspect` shape, with its health.
//! - `images`: local images for `image ls`.
//! - `networks`: Network objects (`network ls` rows, `network inspect` JSON).
//! - `stacks`: `stack ls` rows.
//! - `stored_files`: secrets and configs (`ls` rows and filters, `inspect` JSON, `--pretty`).
//! - `volumes`: a node's volumes (`volume ls` rows and filters, `volume inspect` JSON).
//!
//! This module only renders: it never talks to a daemon or a manager.

#![allow(dead_code)]

pub mod humanize;
pub mod images;
pub mod networks;
pub mod nodes;
pub mod output;
pub mod services;
pub mod stacks;
pub mod stored_files;
pub mod table;
pub mod task_inspect;
pub mod tasks;
pub mod template;
pub mod volumes;

/// Why a `--format` string could not be rendered. The message is the line the
/// user sees, worded like Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The format string is not a valid template.
    #[error("template parsing error: template: :{line}: {message}")]
    Parse { line: usize, message: String },
    /// The template is valid but failed on this object.
    #[error(
        "template parsing error: template: :{line}:{col}: executing \"\" at <{node}>: {message}"
    )]
    Exec {
        line: usize,
        col: usize,
        node: String,
        message: String,
    },
    /// The options asked for contradict each other.
    #[error("{0}")]
    Usage(String),
}
