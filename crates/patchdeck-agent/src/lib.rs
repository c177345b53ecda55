//! The Patchdeck agent: runs on each managed host. This library holds the
//! agent's commands; `main.rs` only parses the command line.

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod health;
pub mod jobs;
pub mod pull;
pub mod reload;
pub mod scan;
pub mod serve;
pub mod systemd;
pub mod transport;
