//! Push mode: the manager calling agents' Linux_Patch_API (contract §3 of the reference, ADR
//! 0003) instead of agents checking in.
//!
//! - [`identity`]: the manager's push client certificate (`CN=patchdeck-manager`), made at start.
//! - [`client`]: [`client::PushClient`], one agent's API: reads, commands, job following.
//! - [`convert`]: the contract's packages, patches and jobs as our inventory and command results.
//! - [`discovery`]: finding agents in an address range.
//! - [`worker`]: the periodic poller and command relay over a [`worker::PushStore`].
//! - [`service`]: that worker in a running manager: the manager's store, one worker per database
//!   (a lease), queued commands and job progress on the event stream.
//! - Discovery runs from the API ([`crate::web::handlers::discoveries`]).

pub mod client;
pub mod convert;
pub mod discovery;
pub mod identity;
pub mod service;
pub mod worker;

pub use client::{
    AcceptedJob, FollowMode, Immediate, JobFollow, JobUpdate, PushClient, PushClientOptions, PushConnector, PushError,
    Submission, SubmitContext, UpdateSource,
};
pub use discovery::{discover, DiscoveredHost, Discovery, DiscoveryError, DiscoveryOptions, DiscoveryProgress};
pub use identity::{ensure_push_identity, PushIdentity};
pub use worker::{Backoff, ClaimedCommand, PushEvent, PushStore, PushWorker, PushWorkerConfig};
