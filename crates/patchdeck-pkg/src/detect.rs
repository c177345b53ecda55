//! Which package manager drives this host: `/etc/os-release` first, then
//! which tools are installed.

use std::path::{Path, PathBuf};

use patchdeck_proto::{BackendKind, OsInfo};

use crate::error::{PkgError, Result};

/// Parses the `os-release(5)` format: `KEY=value` lines, values optionally
/// quoted with `"` or `'` and backslash-escaped, `#` comments.
pub fn parse_os_release(text: &str) -> OsInfo {
    let mut info = OsInfo::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        match key.trim() {
            "ID" => info.id = value.to_ascii_lowercase(),
            "ID_LIKE" => info.id_like = value.split_whitespace().map(str::to_ascii_lowercase).collect(),
            "VERSION_ID" => info.version_id = Some(value),
            "PRETTY_NAME" => info.pretty_name = Some(value),
            _ => {}
        }
    }
    if info.id.is_empty() {
        // os-release(5): "If not set, a default of ID=linux may be used."
        info.id = "linux".to_owned();
    }
    info
}

fn unquote(raw: &str) -> String {
    let inner = match raw.as_bytes() {
        [b'"', .., b'"'] | [b'\'', .., b'\''] if raw.len() >= 2 => &raw[1..raw.len() - 1],
        _ => raw,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads `etc/os-release` (or `usr/lib/os-release`) under `root`, plus the
/// running kernel and machine architecture when `root` is `/`.
pub fn os_info(root: &Path) -> OsInfo {
    let text = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(root.join(p)).ok())
        .unwrap_or_default();
    let mut info = parse_os_release(&text);
    if root == Path::new("/") {
        let uname = rustix::system::uname();
        info.kernel = Some(uname.release().to_string_lossy().into_owned());
        info.arch = Some(uname.machine().to_string_lossy().into_owned());
    }
    info
}

/// The backend a distribution family uses, from `ID` and `ID_LIKE`.
pub fn backend_for_os(info: &OsInfo) -> Option<BackendKind> {
    std::iter::once(info.id.as_str()).chain(info.id_like.iter().map(String::as_str)).find_map(|id| match id {
        "debian" | "ubuntu" | "linuxmint" | "pop" | "raspbian" | "kali" | "devuan" => Some(BackendKind::Apt),
        "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "ol" | "amzn" | "nobara" => Some(BackendKind::Dnf),
        "suse" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" | "sles" | "sled" => Some(BackendKind::Zypper),
        "arch" | "manjaro" | "endeavouros" | "archarm" => Some(BackendKind::Pacman),
        "alpine" | "postmarketos" => Some(BackendKind::Apk),
        _ => None,
    })
}

/// The program whose presence tells that a backend can run.
pub fn backend_program(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Apt => "apt-get",
        BackendKind::Dnf => "dnf",
        BackendKind::Yum => "yum",
        BackendKind::Zypper => "zypper",
        BackendKind::Pacman => "pacman",
        BackendKind::Apk => "apk",
    }
}

/// Looks `program` up on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| {
        candidate
            .metadata()
            .map(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Chooses the backend for the system under `root`.
///
/// The distribution's own package manager wins when its tool is installed
/// (a Debian host with `dnf` installed is still an apt host); RHEL-family
/// hosts without `dnf` fall back to `yum`. Unknown distributions get the
/// first backend whose tool exists.
pub fn detect(root: &Path) -> Result<BackendKind> {
    let info = os_info(root);
    let installed = |k: BackendKind| find_program(backend_program(k)).is_some();
    if let Some(kind) = backend_for_os(&info) {
        if installed(kind) {
            return Ok(kind);
        }
        if kind == BackendKind::Dnf && installed(BackendKind::Yum) {
            return Ok(BackendKind::Yum);
        }
    }
    BackendKind::ALL.into_iter().find(|k| installed(*k)).ok_or_else(|| {
        PkgError::NoBackend(format!(
            "distribution {:?} and none of apt-get, dnf, yum, zypper, pacman, apk on PATH",
            info.id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_os_release() {
        let info = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n# comment\n\nHOME_URL=\"https://www.debian.org/\"\n",
        );
        assert_eq!(info.id, "debian");
        assert_eq!(info.version_id.as_deref(), Some("12"));
        assert_eq!(info.pretty_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(backend_for_os(&info), Some(BackendKind::Apt));
    }

    #[test]
    fn id_like_picks_the_family() {
        let rocky = parse_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n");
        assert_eq!(backend_for_os(&rocky), Some(BackendKind::Dnf));
        let mint = parse_os_release("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(backend_for_os(&mint), Some(BackendKind::Apt));
        let leap = parse_os_release("ID='opensuse-leap'\nID_LIKE=\"suse opensuse\"\n");
        assert_eq!(backend_for_os(&leap), Some(BackendKind::Zypper));
        let unknown = parse_os_release("ID=plan9\n");
        assert_eq!(backend_for_os(&unknown), None);
    }

    #[test]
    fn quoting_and_escapes() {
        let info = parse_os_release("PRETTY_NAME=\"A \\\"quoted\\\" \\$name\"\n");
        assert_eq!(info.pretty_name.as_deref(), Some("A \"quoted\" $name"));
        let info = parse_os_release("garbage line\nID=Alpine\n");
        assert_eq!(info.id, "alpine");
        assert_eq!(parse_os_release("").id, "linux");
    }

    #[test]
    fn os_info_reads_a_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib")).unwrap();
        std::fs::write(root.path().join("usr/lib/os-release"), "ID=arch\n").unwrap();
        let info = os_info(root.path());
        assert_eq!(info.id, "arch");
        assert_eq!(info.kernel, None, "kernel is only read for the running system");
    }

    #[test]
    fn this_host_is_detected() {
        // The test machines are Debian: the real detection must say apt.
        assert_eq!(detect(Path::new("/")).unwrap(), BackendKind::Apt);
    }
}
