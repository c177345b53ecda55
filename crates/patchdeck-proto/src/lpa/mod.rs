//! The Linux_Patch_API contract: the REST + WebSocket API the agent serves in
//! push mode (`https://HOST:12443/api/v1`), spoken exactly as the upstream
//! agent speaks it so that any Linux_Patch_Manager-style manager (and ours)
//! can drive the host.
//!
//! We emit lowercase snake_case enums and the code-level field names, and
//! accept the legacy spellings the upstream emitted or documented
//! (`timedout`/`timeout`, `patchapply`, `reboot` for `allow_reboot`,
//! `type` for `action`, capitalised package status). Every field name is
//! pinned by `tests/lpa_contract.rs`: the upstream's worst bug was a field
//! name that drifted between manager and agent and silently skipped reboots.

pub mod accepted;
pub mod envelope;
pub mod errors;
pub mod jobs;
pub mod jobs_api;
pub mod packages;
pub mod patches;
pub mod system;
pub mod validate;
pub mod ws;

pub use accepted::{JobAccepted, RebootAccepted, RollbackAccepted};
pub use envelope::{ApiError, Envelope};
pub use errors::ErrorCode;
pub use jobs_api::{JobDeleted, JobList, JobQuery};
pub use packages::{
    InstallOptions, InstallRequest, Package, PackageList, PackageQuery, PackageSort, PackageSpec, PackageStatus,
    RemoveQuery, SortOrder, UpdateRequest,
};
pub use patches::{Patch, PatchApplyRequest, PatchList, Severity};
pub use system::{
    CacheStatus, CrlStatus, GpgKeyStatus, Health, HealthStatus, RebootRequest, ServiceStatus, SystemInfo,
};
pub use validate::{parse_json, parse_query, parse_request, Validate, ValidationError};
pub use ws::{ClientMessage, EventKind, ServerEvent, Subscription};
