//! The Patchdeck manager: the REST API (and, later, the web UI and the background worker) over
//! one store, embedded SQLite or PostgreSQL.
//!
//! - [`config`]: layered configuration (defaults, TOML, environment, flags).
//! - [`pki`]: key material in the data directory (internal CA, signing keys, secret key).
//! - [`push`]: push mode: the client of agents' Linux_Patch_API, discovery and the poller.
//! - [`server`]: start-up (storage, keys, first admin) and the serve loop.
//! - [`web`]: the HTTP layer: routes and permissions, authentication, handlers, errors.
//! - [`hub`]: wake-ups of held agent check-ins and live events, across replicas.
//! - [`notify`]: e-mail and webhook notifications (the outbox and its sender).
//! - [`audit`], [`settings`], [`metrics`], [`clock`]: cross-cutting pieces.
//! - [`windows`]: a host's or group's maintenance windows and blackouts as a calendar.

pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod hub;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod pki;
pub mod push;
pub mod server;
pub mod settings;
pub mod state;
pub mod web;
pub mod windows;
