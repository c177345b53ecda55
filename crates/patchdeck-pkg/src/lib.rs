//! The Patchdeck package layer.
//!
//! One interface, [`PackageManager`], implemented for apt/dpkg, dnf and yum,
//! zypper, pacman and apk. It lists installed packages (with their source
//! package, which vulnerability data is keyed by), lists available updates
//! with a security classification and the reason for it, refreshes metadata,
//! plans (dry run) and applies installs, upgrades, removals and downgrades,
//! and tells whether the host needs a reboot.
//!
//! Every package manager runs as a child process through [`exec`]:
//! non-interactive, in the C locale, in its own process group, with a timeout.
//! Names and versions reach a command line only as [`PackageName`] and
//! [`PackageVersion`], which cannot look like options or paths.
//!
//! This crate knows nothing about networking, jobs or storage.

pub mod apk;
pub mod apt;
mod backend;
pub mod detect;
pub mod dnf;
mod error;
pub mod exec;
pub mod host;
pub mod pacman;
pub mod procs;
pub mod rpmdb;
mod spec;
pub mod zypper;

pub use backend::{open, open_detected, Applied, BackendOptions, Operation, PackageManager, UpgradeScope};
pub use error::{PkgError, Result};
pub use spec::{PackageName, PackageSpec, PackageVersion, Pin, MAX_LEN};
