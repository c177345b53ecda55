//! The manager's storage: one interface over embedded SQLite and PostgreSQL.
//!
//! # Design (ADR 0004)
//!
//! - **One type, two databases.** [`Store`] wraps a `sqlx::AnyPool` and a [`Backend`]. Every
//!   query is written once, in the SQL both databases accept, with `$1, $2` placeholders (SQLite
//!   reads `$N` as parameter N). Where the dialects really differ the one function concerned
//!   branches on [`Backend`]: text ordering (`COLLATE "C"` on PostgreSQL), the write-transaction
//!   `BEGIN` (`BEGIN IMMEDIATE` on SQLite), the snapshot used to verify the audit chain,
//!   backups, claiming commands (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and recording a
//!   check-in (one statement on PostgreSQL, a short transaction on SQLite).
//! - **Per-backend, append-only migrations** in `migrations/sqlite` and `migrations/postgres`,
//!   embedded with `sqlx::migrate!` and applied by [`Store::migrate`]. Both define the same
//!   tables, columns and index names.
//! - **Types the `Any` driver carries on both sides**: 64-bit integers, text and bytes. Booleans
//!   are 0/1 integers (the `Any` driver cannot decode an SQLite boolean), timestamps are
//!   [`jiff::Timestamp`] in the API and Unix **milliseconds** in `*_at` columns, enums are text
//!   validated in Rust, ids are typed newtypes ([`UserId`], [`HostId`], …).
//! - **Atomic by construction.** Every check-and-change that races (a seat of a registration
//!   token, a refresh token rotation, a TOTP step, a recovery code, a WebAuthn counter, a
//!   lockout counter) is one conditional `UPDATE` whose affected-row count decides, or one
//!   transaction that starts with its write. The conformance suite runs these races for real on
//!   both backends.
//! - **Errors** are one [`Error`] enum: unique violations become [`Error::Conflict`] naming the
//!   field, foreign-key violations [`Error::MissingReference`]. No message carries a secret or a
//!   hash.
//! - **No secrets in the clear.** Tokens and recovery codes are stored as SHA-256 hashes, TOTP
//!   seeds encrypted by the caller; `Debug` of [`User`] and [`DatabaseConfig`] redacts them.
//!
//! # Resources
//!
//! Operations are `async` methods on [`Store`], one module per resource: users (with TOTP,
//! recovery codes and OIDC links), WebAuthn credentials, groups and memberships, hosts (with the
//! operator [`Scope`], agent enrollment, approval and check-ins), host inventories (installed
//! packages, available updates, the fleet package search), the agents' command queue,
//! registration and API tokens, sessions and refresh tokens, certificates, the hash-chained audit
//! log, settings, and maintenance windows and blackouts. Every method takes the time (`now`) as an argument:
//! the store never reads a clock.

mod audit;
mod certificates;
mod commands;
mod compliance;
mod config;
mod deployments;
mod error;
mod groups;
mod hosts;
mod inventory;
mod jobs;
mod lease;
mod notifications;
mod notify;
mod sessions;
mod settings;
mod sql;
mod store;
mod tokens;
mod types;
mod users;
mod webauthn;
mod windows;

pub use audit::{AuditEntry, AuditFilter, AuditOutcome, ChainReport, NewAuditEntry};
pub use certificates::{Certificate, CertificateFilter, CertificateKind, NewCertificate, RevokedCertificate};
pub use commands::{
    CommandFilter, CommandRecord, NewCommand, ResultOutcome, NOT_DELIVERED, NO_RESULT, REJECTED_PREFIX,
};
pub use compliance::{utc_day, ComplianceSample, FleetSummary, SeverityCounts, COMPLIANCE_SAMPLE_DAYS};
pub use config::{DatabaseConfig, StoreOptions};
pub use deployments::{
    Deployment, DeploymentFilter, DeploymentHost, DeploymentStatus, GroupPolicy, HostRunState, NewDeployment,
    NewDeploymentHost, PlannedPackage, RebootPolicy, RingSpec, Schedule,
};
pub use error::{Error, Result};
pub use groups::{Group, GroupCounts, GroupUpdate};
pub use hosts::{
    Approval, CheckinFacts, CheckinOutcome, EnrollError, Host, HostFilter, HostSort, HostStatus, NewAgentHost, NewHost,
    Scope, Transport,
};
pub use inventory::{
    FleetPackageHit, FleetPackageQuery, HostPackage, HostUpdate, PackageFilter, UpdateFilter, VersionCmp,
};
pub use jobs::{JobCounts, JobOutcome, JobRecord, JobState, WorkerRecord};
pub use lease::{Lease, LeaseKey};
pub use notifications::{
    ChannelKind, DeliveryFilter, DeliveryStatus, DigestUpdate, ExpiringCertificate, NewDelivery,
    NewNotificationChannel, NewNotificationRule, NotificationChannel, NotificationDelivery, NotificationRule,
};
pub use notify::{Listener, Notification};
pub use sessions::{NewSession, RotateOutcome, Session, REUSE_REASON};
pub use settings::Setting;
pub use store::{Backend, PoolStats, Store};
pub use tokens::{
    ApiToken, NewApiToken, NewRegistrationToken, RegistrationToken, TakeSeatError, TokenHashBytes,
    API_TOKEN_TOUCH_INTERVAL_MS,
};
pub use types::{
    ApiTokenId, AuditId, BlackoutId, CertificateId, DeploymentId, GroupId, HostId, MaintenanceWindowId, Page, Paging,
    RegistrationTokenId, SessionId, SortDir, UnknownVariant, UserId, WebauthnCredentialId, MAX_PAGE_SIZE,
};
pub use types::{NotificationChannelId, NotificationDeliveryId, NotificationRuleId};
pub use users::{AuthSource, LoginFailure, NewUser, OidcIdentity, Role, User, UserFilter, UserSort, UserUpdate};
pub use webauthn::{NewWebauthnCredential, WebauthnCredential};
pub use windows::{
    format_time, parse_time, Blackout, BlackoutFields, BlackoutFilter, MaintenanceWindow, WindowFields, WindowFilter,
    WindowTarget, MAX_NAME_CHARS,
};
