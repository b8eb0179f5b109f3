//! The client commands, one module per Docker command group.

pub mod config;
pub mod dashboard;
pub mod events;
pub mod exec;
pub mod image;
pub mod inspect;
pub mod lists;
pub mod login;
pub mod network;
pub mod node;
pub mod secret;
pub mod service;
pub mod stack;
pub mod stored_commands;
pub mod stored_files;
pub mod swarm;
pub mod system;
pub mod task;
pub mod volume;
