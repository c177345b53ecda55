//! Test support for Patchdeck: throw-away sandboxes in which the REAL package
//! managers run against local repositories the test builds.
//!
//! Only tests use this crate (as a dev-dependency). It panics with a clear
//! message when a sandbox cannot be built: a test that cannot set up its
//! world has nothing to check.

pub mod apt;
pub mod oidc;
pub mod pg;
pub mod pki;
pub mod serve;
pub mod webauthn;

pub use apt::{AptSandbox, AptSandboxBuilder, Deb};
