//! The Patchdeck agent: runs on each managed host. This library holds the
//! agent's commands; `main.rs` only parses the command line.

pub mod cli;
pub mod config;
pub mod jobs;
pub mod scan;
pub mod transport;
