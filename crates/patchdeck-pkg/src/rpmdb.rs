//! The rpm database and rpm naming, shared by the dnf/yum and zypper backends.
//!
//! # What is installed
//!
//! [`installed`] runs
//!
//! ```text
//! rpm --root=<root> -qa --qf '%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{INSTALLTIME}\t%{LONGSIZE}\t@\n'
//! ```
//!
//! one line per installed package, nine tab-separated fields, the last one a
//! literal `@` that marks a complete record (a line cut short, or a field that
//! somehow contained a tab, then fails to parse instead of shifting fields).
//! None of these tags can contain a tab or a newline. `%{EPOCH}` is `(none)`
//! for packages without an epoch; `%{SOURCERPM}` is `name-version-release.src.rpm`
//! (`(none)` for the `gpg-pubkey` pseudo-packages that hold imported keys,
//! which are not packages and are skipped).
//!
//! The rpm database location: no `--dbpath` is passed. rpm finds the database
//! through its macros (`%_dbpath`, normally `/var/lib/rpm`) like dnf and zypper
//! do, so all three read the same database. Debian's rpm build sets
//! `%_dbpath` to `~/.rpmdb`, which makes it depend on `HOME`: sandboxes on
//! Debian set `HOME` (through `BackendOptions::env`) to a directory whose
//! `.rpmmacros` says `%_dbpath /var/lib/rpm`. rpm prints nothing and exits 0
//! when the database does not exist, so an empty result is not an error.
//!
//! # Versions
//!
//! Versions are reported the way dnf and zypper print them,
//! `[epoch:]version-release` with the epoch only when it is not zero, and are
//! compared with `patchdeck_version` in rpm format ([`compare_evr`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use patchdeck_proto::InstalledPackage;
use patchdeck_version::VersionFormat;

use crate::backend::{same_version, BackendOptions};
use crate::error::{PkgError, Result};
use crate::exec::Cmd;

/// The `--queryformat` of [`installed`].
pub const QUERY_FORMAT: &str =
    "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{INSTALLTIME}\\t%{LONGSIZE}\\t@\\n";

/// Architectures rpm knows, for telling `name.arch` from a name with a dot.
pub const KNOWN_ARCHES: &[&str] = &[
    "noarch",
    "x86_64",
    "i386",
    "i486",
    "i586",
    "i686",
    "athlon",
    "aarch64",
    "armv7hl",
    "armv7l",
    "armv6hl",
    "ppc64le",
    "ppc64",
    "ppc",
    "s390x",
    "s390",
    "riscv64",
    "loongarch64",
    "src",
    "nosrc",
    "x86_64_v2",
    "x86_64_v3",
    "x86_64_v4",
    "ia64",
    "mips64el",
    "sparc64",
];

/// An rpm epoch:version-release.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Evr {
    /// The epoch; `None` and `Some(0)` mean the same to rpm.
    pub epoch: Option<u64>,
    pub version: String,
    pub release: String,
}

impl Evr {
    /// Parses `[epoch:]version-release` (the release is required).
    pub fn parse(s: &str) -> Option<Evr> {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => (Some(e.parse::<u64>().ok()?), rest),
            None => (None, s),
        };
        let (version, release) = rest.rsplit_once('-')?;
        if version.is_empty() || release.is_empty() || version.contains(':') {
            return None;
        }
        Some(Evr { epoch, version: version.to_owned(), release: release.to_owned() })
    }

    /// The epoch as a number (absent = 0).
    pub fn epoch_num(&self) -> u64 {
        self.epoch.unwrap_or(0)
    }
}

/// `[epoch:]version-release`, the epoch only when not zero (as dnf prints it).
impl fmt::Display for Evr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch {
            Some(e) if e != 0 => write!(f, "{e}:{}-{}", self.version, self.release),
            _ => write!(f, "{}-{}", self.version, self.release),
        }
    }
}

/// A package's name, epoch, version, release and architecture.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nevra {
    pub name: String,
    pub evr: Evr,
    pub arch: String,
}

impl Nevra {
    /// Parses `name-[epoch:]version-release.arch` (`other-1:1.2-1.noarch`),
    /// the form dnf prints in `updateinfo list` and transaction output.
    pub fn parse(s: &str) -> Option<Nevra> {
        let (nevr, arch) = s.rsplit_once('.')?;
        // The last dot-separated part is always the arch here (unlike in a bare name).
        if arch.is_empty() || !arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        let (rest, release) = nevr.rsplit_once('-')?;
        let (name, ev) = rest.rsplit_once('-')?;
        if name.is_empty() {
            return None;
        }
        let evr = Evr::parse(&format!("{ev}-{release}"))?;
        Some(Nevra { name: name.to_owned(), evr, arch: arch.to_owned() })
    }
}

impl fmt::Display for Nevra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}.{}", self.name, self.evr, self.arch)
    }
}

/// Splits `name.arch` when the suffix is a known architecture
/// (`libmulti.x86_64` → `("libmulti", Some("x86_64"))`, `python3.11` → `("python3.11", None)`).
pub fn split_arch(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once('.') {
        Some((name, arch)) if !name.is_empty() && KNOWN_ARCHES.contains(&arch) => (name, Some(arch)),
        _ => (s, None),
    }
}

/// Compares two rpm versions (`[epoch:]version[-release]`) the way rpm does.
/// A version the comparison cannot read sorts as equal (and is logged).
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    match patchdeck_version::compare(VersionFormat::Rpm, a, b) {
        Ok(ordering) => ordering,
        Err(err) => {
            tracing::warn!(a, b, %err, "cannot compare rpm versions");
            Ordering::Equal
        }
    }
}

/// Whether the installed version `have` is the exact version `want` asked for.
/// `want` may leave out the epoch (then any epoch matches, as with dnf's
/// `name-version-release`) or the release (`1.2` matches `1.2-3`).
pub fn version_matches(have: &Evr, want: &str) -> bool {
    let (epoch, rest) = match want.split_once(':') {
        Some((e, rest)) => match e.parse::<u64>() {
            Ok(e) => (Some(e), rest),
            Err(_) => return false,
        },
        None => (None, want),
    };
    if epoch.is_some_and(|e| e != have.epoch_num()) {
        return false;
    }
    // With a release, compare the full version-release; without one, any
    // release of that version matches (as `dnf install name-1.0` does).
    match rest.rsplit_once('-') {
        Some(_) => same_version(VersionFormat::Rpm, rest, &format!("{}-{}", have.version, have.release)),
        None => same_version(VersionFormat::Rpm, rest, &have.version),
    }
}

/// The name and `version-release` of a source rpm file name
/// (`hello-src-1.0-1.src.rpm` → `("hello-src", "1.0-1")`).
pub fn source_name(sourcerpm: &str) -> Option<(&str, &str)> {
    let stem = sourcerpm.strip_suffix(".src.rpm").or_else(|| sourcerpm.strip_suffix(".nosrc.rpm"))?;
    let (rest, _release) = stem.rsplit_once('-')?;
    let (name, _version) = rest.rsplit_once('-')?;
    if name.is_empty() {
        return None;
    }
    Some((name, &stem[name.len() + 1..]))
}

/// One line of `rpm -qa --qf QUERY_FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage {
    pub name: String,
    pub evr: Evr,
    pub arch: String,
    /// The `SOURCERPM` file name.
    pub sourcerpm: Option<String>,
    pub installed_at: Option<Timestamp>,
    pub size_bytes: Option<u64>,
}

impl RpmPackage {
    /// As the proto type; `origin` and `held` are for the backend to fill in.
    pub fn to_installed(&self) -> InstalledPackage {
        let source = self.sourcerpm.as_deref().and_then(source_name);
        InstalledPackage {
            name: self.name.clone(),
            version: self.evr.to_string(),
            arch: self.arch.clone(),
            source_package: source.map(|(name, _)| name.to_owned()),
            // A source rpm and the binaries built from it share the spec's epoch;
            // the file name only lacks it.
            source_version: source.map(|(_, vr)| match self.evr.epoch {
                Some(e) if e != 0 => format!("{e}:{vr}"),
                _ => vr.to_owned(),
            }),
            origin: None,
            installed_at: self.installed_at,
            size_bytes: self.size_bytes,
            held: false,
        }
    }
}

/// The command [`installed`] runs.
pub fn query_cmd(options: &BackendOptions) -> Cmd {
    let mut root = std::ffi::OsString::from("--root=");
    root.push(options.root.as_os_str());
    options.cmd("rpm").arg(root).arg("-qa").arg("--qf").arg(QUERY_FORMAT)
}

/// Every installed package under `options.root`, sorted by name, arch and version.
pub fn installed(options: &BackendOptions) -> Result<Vec<RpmPackage>> {
    let cmd = query_cmd(options);
    let out = cmd.run_ok(&[0], None)?;
    parse_query(&cmd, &out.stdout)
}

/// Parses the output of [`query_cmd`].
pub fn parse_query(cmd: &Cmd, text: &str) -> Result<Vec<RpmPackage>> {
    let mut packages = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, epoch, version, release, arch, sourcerpm, installtime, size, "@"] = fields[..] else {
            return Err(bad("expected 8 tab-separated fields and the record end marker @"));
        };
        if name == "gpg-pubkey" && sourcerpm == "(none)" {
            // An imported signing key, not a package.
            continue;
        }
        if name.is_empty() || version.is_empty() || release.is_empty() || arch.is_empty() {
            return Err(bad("empty name, version, release or arch"));
        }
        let epoch = match epoch {
            "(none)" => None,
            e => Some(e.parse::<u64>().map_err(|_| bad("epoch is not a number"))?),
        };
        let sourcerpm = match sourcerpm {
            "(none)" => None,
            s if source_name(s).is_some() => Some(s.to_owned()),
            _ => return Err(bad("SOURCERPM is not name-version-release.src.rpm")),
        };
        let installed_at = match installtime {
            "(none)" => None,
            t => {
                let secs = t.parse::<i64>().map_err(|_| bad("install time is not a number"))?;
                Some(Timestamp::from_second(secs).map_err(|_| bad("install time out of range"))?)
            }
        };
        let size_bytes = match size {
            "(none)" => None,
            s => Some(s.parse::<u64>().map_err(|_| bad("size is not a number"))?),
        };
        packages.push(RpmPackage {
            name: name.to_owned(),
            evr: Evr { epoch, version: version.to_owned(), release: release.to_owned() },
            arch: arch.to_owned(),
            sourcerpm,
            installed_at,
            size_bytes,
        });
    }
    packages.sort_by(|a, b| {
        (a.name.as_str(), a.arch.as_str())
            .cmp(&(b.name.as_str(), b.arch.as_str()))
            .then_with(|| compare_evr(&a.evr.to_string(), &b.evr.to_string()))
    });
    Ok(packages)
}

/// The newest installed version of each (name, arch): what an update replaces.
/// Install-only packages such as `kernel` can be installed in several versions.
pub fn newest_by_name_arch(packages: &[RpmPackage]) -> BTreeMap<(String, String), Evr> {
    let mut newest: BTreeMap<(String, String), Evr> = BTreeMap::new();
    for p in packages {
        let key = (p.name.clone(), p.arch.clone());
        match newest.get(&key) {
            Some(have) if compare_evr(&have.to_string(), &p.evr.to_string()) != Ordering::Less => {}
            _ => {
                newest.insert(key, p.evr.clone());
            }
        }
    }
    newest
}

/// The installed version an update of `name`.`arch` replaces: the same arch,
/// else (an arch change such as `x86_64` → `noarch`) the only installed arch.
pub fn current_for<'a>(newest: &'a BTreeMap<(String, String), Evr>, name: &str, arch: &str) -> Option<&'a Evr> {
    if let Some(evr) = newest.get(&(name.to_owned(), arch.to_owned())) {
        return Some(evr);
    }
    let mut same_name = newest.range((name.to_owned(), String::new())..).take_while(|((n, _), _)| n == name);
    match (same_name.next(), same_name.next()) {
        (Some((_, evr)), None) => Some(evr),
        _ => None,
    }
}

/// The installed packages in the proto form, sorted by (name, arch).
pub fn to_installed(packages: &[RpmPackage]) -> Vec<InstalledPackage> {
    packages.iter().map(RpmPackage::to_installed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cmd() -> Cmd {
        Cmd::new("rpm", Duration::from_secs(1)).arg("-qa")
    }

    fn data(path: &str) -> String {
        let path = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_recorded_query_with_epochs_multiarch_and_source_names() {
        // Recorded from a dnf sandbox: hello built from source rpm hello-src,
        // other with Epoch 1, libmulti installed for x86_64 and i686.
        let packages = parse_query(&cmd(), &data("rpm/qa-multiarch-epoch.txt")).unwrap();
        let installed = to_installed(&packages);
        let summary: Vec<String> = installed
            .iter()
            .map(|p| {
                let source = p.source_package.as_deref().unwrap_or("-");
                let source_version = p.source_version.as_deref().unwrap_or("-");
                format!("{} {} {} {source} {source_version}", p.name, p.version, p.arch)
            })
            .collect();
        assert_eq!(
            summary,
            [
                "hello 1.0-1 noarch hello-src 1.0-1",
                "libmulti 2.0-1 i686 libmulti 2.0-1",
                "libmulti 2.0-1 x86_64 libmulti 2.0-1",
                "other 1:1.0-1 noarch other 1:1.0-1",
            ]
        );
        assert_eq!(installed[0].size_bytes, Some(4));
        assert_eq!(installed[0].installed_at, Some(Timestamp::from_second(1795438665).unwrap()));
    }

    #[test]
    fn skips_key_pseudo_packages_and_keeps_kernel_versions() {
        // Synthetic, in the format of the query: a gpg-pubkey entry and two kernels.
        let text = "gpg-pubkey\t(none)\t8483c65d\t5ccc5b19\t(none)\t(none)\t1700000000\t0\t@\n\
                    kernel-core\t(none)\t6.5.6\t300.fc39\tx86_64\tkernel-6.5.6-300.fc39.src.rpm\t1700000000\t70000000\t@\n\
                    kernel-core\t(none)\t6.5.12\t300.fc39\tx86_64\tkernel-6.5.12-300.fc39.src.rpm\t1700000001\t70000001\t@\n\
                    bash\t0\t5.2.15\t5.fc39\tx86_64\tbash-5.2.15-5.fc39.src.rpm\t(none)\t(none)\t@\n";
        let packages = parse_query(&cmd(), text).unwrap();
        let names: Vec<String> = packages.iter().map(|p| format!("{}-{}", p.name, p.evr)).collect();
        assert_eq!(names, ["bash-5.2.15-5.fc39", "kernel-core-6.5.6-300.fc39", "kernel-core-6.5.12-300.fc39"]);
        // Epoch 0 is printed like no epoch, as dnf does.
        assert_eq!(packages[0].evr.epoch, Some(0));
        assert_eq!(packages[0].installed_at, None);
        let newest = newest_by_name_arch(&packages);
        assert_eq!(newest[&("kernel-core".to_owned(), "x86_64".to_owned())].to_string(), "6.5.12-300.fc39");
        let kernels = to_installed(&packages);
        assert_eq!(kernels[1].source_package.as_deref(), Some("kernel"));
    }

    #[test]
    fn garbled_lines_are_parse_errors_naming_the_line() {
        for (text, reason) in [
            ("hello\t(none)\t1.0\t1\tnoarch\thello-1.0-1.src.rpm\t17\t4\n", "record end marker"),
            ("hello\t(none)\t1.0\t1\tnoarch\thello-1.0-1.src.rpm\t17\t4\t@\textra\t@\n", "record end marker"),
            ("hello\tx\t1.0\t1\tnoarch\thello-1.0-1.src.rpm\t17\t4\t@\n", "epoch"),
            ("hello\t(none)\t1.0\t1\tnoarch\tgarbage\t17\t4\t@\n", "SOURCERPM"),
            ("ok\t(none)\t1\t1\tnoarch\tok-1-1.src.rpm\t17\t4\t@\nhello\t(none)\t1.0\t1\tnoarch\thello-1.0-1.src.rpm\tsoon\t4\t@\n", "install time"),
        ] {
            let err = parse_query(&cmd(), text).unwrap_err();
            let PkgError::Parse { line_no, line, reason: got, .. } = &err else {
                panic!("{err}");
            };
            assert!(got.contains(reason), "{err}");
            assert_eq!(line, text.lines().nth(line_no - 1).unwrap());
        }
    }

    #[test]
    fn nevra_evr_and_source_names() {
        let n = Nevra::parse("other-1:1.2-1.noarch").unwrap();
        assert_eq!((n.name.as_str(), n.evr.epoch, n.arch.as_str()), ("other", Some(1), "noarch"));
        assert_eq!(n.evr.to_string(), "1:1.2-1");
        assert_eq!(n.to_string(), "other-1:1.2-1.noarch");
        let n = Nevra::parse("python3.11-libs-3.11.4-1.fc39.x86_64").unwrap();
        assert_eq!((n.name.as_str(), n.evr.to_string().as_str()), ("python3.11-libs", "3.11.4-1.fc39"));
        assert_eq!(Nevra::parse("hello-1.0.noarch"), None, "no release");
        assert_eq!(Nevra::parse("hello-1.0-1.armv8l").unwrap().arch, "armv8l", "any arch word");
        assert_eq!(Nevra::parse("hello-1.0-1.no/arch"), None, "not an arch");
        assert_eq!(Evr::parse("0:1.0-1").unwrap().to_string(), "1.0-1");
        assert_eq!(Evr::parse("x:1.0-1"), None);
        assert_eq!(source_name("hello-src-1.0-1.src.rpm"), Some(("hello-src", "1.0-1")));
        assert_eq!(source_name("kernel-6.5.6-300.fc39.src.rpm"), Some(("kernel", "6.5.6-300.fc39")));
        assert_eq!(source_name("hello.src.rpm"), None);
        assert_eq!(split_arch("libmulti.x86_64"), ("libmulti", Some("x86_64")));
        assert_eq!(split_arch("python3.11"), ("python3.11", None));
        let have = Evr::parse("1:1.2-3").unwrap();
        // Equivalent spellings are the same version: compared by rpm's rules, not as text.
        for want in ["1:1.2-3", "1.2-3", "1.2", "1:1.2", "1:1.02-03", "01:1.2"] {
            assert!(version_matches(&have, want), "{want}");
        }
        for want in ["0:1.2-3", "1.2-4", "1.3", "2:1.2"] {
            assert!(!version_matches(&have, want), "{want}");
        }
    }
}
