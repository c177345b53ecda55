//! Wire types shared by the Patchdeck agent, the manager and the CLI.
//!
//! Everything here is plain data with serde derives: no IO, no clocks, no
//! networking. Field names and enum spellings are part of the public contract
//! (the agent's `scan --json` output and, later, the check-in protocol), so
//! they are pinned by tests in `tests/contract.rs`; rename nothing without a
//! schema version bump.

pub mod agent;
pub mod inventory;
pub mod lpa;
pub mod orchestration;

pub use inventory::*;
