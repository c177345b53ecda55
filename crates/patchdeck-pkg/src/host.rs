//! Facts about the managed system that every backend shares: reboot
//! evidence, installed kernels, which packages need a reboot, and when
//! metadata files last changed.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use patchdeck_proto::RebootStatus;
use patchdeck_version::VersionFormat;

use crate::backend::BackendOptions;
use crate::error::Result;

/// Whether installing a new version of `name` most likely needs a reboot to
/// take effect: kernels, the C library, init, microcode and firmware.
pub fn reboot_likely(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "kernel",
        "kernel-core",
        "kernel-default",
        "kernel-modules",
        "kernel-rt",
        "linux",
        "linux-lts",
        "linux-zen",
        "linux-hardened",
        "linux-virt",
        "linux-firmware",
        "libc6",
        "glibc",
        "musl",
        "systemd",
        "libsystemd0",
        "libsystemd-shared",
        "systemd-libs",
        "dbus",
        "dbus-1",
        "dbus-daemon",
        "dbus-broker",
        "intel-microcode",
        "amd64-microcode",
        "microcode_ctl",
        "amd-ucode",
        "intel-ucode",
        "ucode-amd",
        "ucode-intel",
    ];
    const PREFIXES: &[&str] = &["linux-image-", "kernel-default-", "kernel-core-", "linux-signed-", "linux-modules-"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The newest modification time of the given files, as a timestamp.
pub fn newest_mtime(paths: impl IntoIterator<Item = PathBuf>) -> Option<Timestamp> {
    paths.into_iter().filter_map(|p| p.metadata().ok()?.modified().ok()).max().and_then(system_time_to_timestamp)
}

/// The newest modification time of the files directly inside `dir` whose
/// name satisfies `keep`.
pub fn newest_mtime_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Option<Timestamp> {
    let entries = std::fs::read_dir(dir).ok()?;
    newest_mtime(entries.filter_map(|e| e.ok()).filter(|e| e.file_name().to_str().is_some_and(&keep)).map(|e| e.path()))
}

pub(crate) fn system_time_to_timestamp(t: SystemTime) -> Option<Timestamp> {
    Timestamp::try_from(t).ok()
}

/// Kernel releases with modules installed under `lib/modules` and
/// `usr/lib/modules` of the root (e.g. `6.1.0-18-amd64`).
pub fn installed_kernels(options: &BackendOptions) -> Vec<String> {
    let mut kernels: Vec<String> = ["lib/modules", "usr/lib/modules"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(options.path(dir)).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("modules.dep").exists() || e.path().join("vmlinuz").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    kernels.sort();
    kernels.dedup();
    kernels
}

/// The newest of `kernels` by the package format's version ordering.
pub fn newest_kernel(kernels: &[String], format: VersionFormat) -> Option<&String> {
    kernels.iter().max_by(|a, b| {
        // A kernel release that does not parse as a version sorts lowest.
        patchdeck_version::compare(format, a, b).unwrap_or(Ordering::Equal)
    })
}

/// Reboot evidence common to all distributions:
/// `/var/run/reboot-required` (with `.pkgs`), and the running kernel against
/// the newest installed one. Backends add their own (`needs-restarting -r`).
pub fn reboot_status_common(options: &BackendOptions, format: VersionFormat) -> Result<RebootStatus> {
    let mut status = RebootStatus::default();
    for flag in ["run/reboot-required", "var/run/reboot-required"] {
        let path = options.path(flag);
        if path.exists() {
            status.required = true;
            status.reasons.push(format!("/{flag} exists"));
            let pkgs = options.path(&format!("{flag}.pkgs"));
            if let Ok(text) = std::fs::read_to_string(&pkgs) {
                status.packages.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
            }
            break;
        }
    }
    status.packages.sort();
    status.packages.dedup();

    let kernels = installed_kernels(options);
    status.newest_kernel = newest_kernel(&kernels, format).cloned();
    if options.is_host_root() {
        let running = rustix::system::uname().release().to_string_lossy().into_owned();
        if let Some(newest) = &status.newest_kernel {
            if !kernels.contains(&running) {
                status.required = true;
                status.reasons.push(format!("running kernel {running} is no longer installed (newest is {newest})"));
            } else if newest != &running
                && patchdeck_version::compare(format, newest, &running).is_ok_and(|o| o == Ordering::Greater)
            {
                status.required = true;
                status.reasons.push(format!("running kernel {running} is older than installed kernel {newest}"));
            }
        }
        status.running_kernel = Some(running);
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_likely_packages() {
        for name in [
            "linux-image-6.1.0-18-amd64",
            "kernel-core",
            "libc6",
            "glibc",
            "systemd",
            "linux-lts",
            "intel-microcode",
            "dbus-1",
            "dbus-daemon",
        ] {
            assert!(reboot_likely(name), "{name}");
        }
        for name in ["bash", "openssl", "linux-headers-amd64", "kernelshark", "curl"] {
            assert!(!reboot_likely(name), "{name}");
        }
    }

    #[test]
    fn reboot_required_file_with_packages() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("var/run")).unwrap();
        std::fs::write(root.path().join("var/run/reboot-required"), "*** System restart required ***\n").unwrap();
        std::fs::write(root.path().join("var/run/reboot-required.pkgs"), "libc6\nlinux-image-amd64\nlibc6\n").unwrap();
        let status = reboot_status_common(&BackendOptions::with_root(root.path()), VersionFormat::Deb).unwrap();
        assert!(status.required);
        assert_eq!(status.reasons, ["/var/run/reboot-required exists"]);
        assert_eq!(status.packages, ["libc6", "linux-image-amd64"]);
        assert_eq!(status.running_kernel, None, "a sandbox root has no running kernel");
    }

    #[test]
    fn no_evidence_no_reboot() {
        let root = tempfile::tempdir().unwrap();
        let status = reboot_status_common(&BackendOptions::with_root(root.path()), VersionFormat::Rpm).unwrap();
        assert_eq!(status, RebootStatus::default());
    }

    #[test]
    fn newest_kernel_uses_version_order_not_text_order() {
        let root = tempfile::tempdir().unwrap();
        for k in ["6.1.0-9-amd64", "6.1.0-18-amd64", "6.1.0-10-amd64"] {
            let dir = root.path().join("lib/modules").join(k);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("modules.dep"), "").unwrap();
        }
        // A directory without modules.dep is leftover, not a kernel.
        std::fs::create_dir_all(root.path().join("lib/modules/7.0.0-1-amd64")).unwrap();
        let options = BackendOptions::with_root(root.path());
        let kernels = installed_kernels(&options);
        assert_eq!(kernels.len(), 3);
        assert_eq!(newest_kernel(&kernels, VersionFormat::Deb).unwrap(), "6.1.0-18-amd64");
    }

    #[test]
    fn newest_mtime_of_missing_files_is_none() {
        assert_eq!(newest_mtime([PathBuf::from("/nonexistent/patchdeck")]), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a_Packages"), "").unwrap();
        assert!(newest_mtime_in(dir.path(), |n| n.ends_with("_Packages")).is_some());
        assert!(newest_mtime_in(dir.path(), |n| n.ends_with("_Release")).is_none());
    }
}
