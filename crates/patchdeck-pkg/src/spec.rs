//! Validated package names, versions and `name=version` specs.
//!
//! Everything handed to a package manager on its command line goes through
//! these constructors first, so that no input can become an option (`-o…`,
//! `--root=…`) or a path (`../x.deb`). The rules are those of the
//! Linux_Patch_API contract: names `^[A-Za-z0-9][A-Za-z0-9+._-]*$`, versions
//! `^[A-Za-z0-9][A-Za-z0-9+.:~_^-]*$` (rpm's `^` added), at most 256
//! characters, and no `..`.

use std::fmt;
use std::str::FromStr;

use patchdeck_proto::lpa::validate;

use crate::error::{PkgError, Result};

/// Longest name or version we accept.
pub const MAX_LEN: usize = validate::MAX_NAME_LEN;

/// Applies one of the contract's input rules (kept in one place, the
/// protocol crate, so the API and the package layer can never disagree).
fn check(
    what: &'static str,
    value: &str,
    rule: fn(&str, &str) -> std::result::Result<(), validate::ValidationError>,
) -> Result<()> {
    rule(what, value).map_err(|e| PkgError::invalid(what, value, e.message))
}

/// A package name that is safe to pass to any package manager.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName(String);

impl PackageName {
    pub fn parse(s: &str) -> Result<Self> {
        check("package name", s, validate::validate_package_name)?;
        Ok(PackageName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A package version that is safe to pass to any package manager.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageVersion(String);

impl PackageVersion {
    pub fn parse(s: &str) -> Result<Self> {
        check("package version", s, validate::validate_version)?;
        Ok(PackageVersion(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `name` or `name=version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageSpec {
    pub name: PackageName,
    pub version: Option<PackageVersion>,
}

impl PackageSpec {
    pub fn new(name: PackageName, version: Option<PackageVersion>) -> Self {
        PackageSpec { name, version }
    }

    /// Parses `name` or `name=version`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once('=') {
            Some((name, version)) => {
                Ok(PackageSpec { name: PackageName::parse(name)?, version: Some(PackageVersion::parse(version)?) })
            }
            None => Ok(PackageSpec { name: PackageName::parse(s)?, version: None }),
        }
    }

    /// The spec as a [`Pin`]; fails when no version was given.
    pub fn pinned(&self) -> Result<Pin> {
        match &self.version {
            Some(version) => Ok(Pin { name: self.name.clone(), version: version.clone() }),
            None => Err(PkgError::invalid(
                "package spec",
                self.name.as_str(),
                "an exact version is required here (name=version)",
            )),
        }
    }
}

impl FromStr for PackageSpec {
    type Err = PkgError;
    fn from_str(s: &str) -> Result<Self> {
        PackageSpec::parse(s)
    }
}

impl fmt::Display for PackageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}={}", self.name.as_str(), v.as_str()),
            None => f.write_str(self.name.as_str()),
        }
    }
}

/// An exact `name=version` pair: what deployments and rollbacks install.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pin {
    pub name: PackageName,
    pub version: PackageVersion,
}

impl Pin {
    /// Parses `name=version`; the version is required.
    pub fn parse(s: &str) -> Result<Self> {
        PackageSpec::parse(s)?.pinned()
    }

    pub fn new(name: &str, version: &str) -> Result<Self> {
        Ok(Pin { name: PackageName::parse(name)?, version: PackageVersion::parse(version)? })
    }
}

impl FromStr for Pin {
    type Err = PkgError;
    fn from_str(s: &str) -> Result<Self> {
        Pin::parse(s)
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name.as_str(), self.version.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_names_and_versions() {
        for name in ["libc6", "g++", "python3.11", "libstdc++6", "xz-utils", "NetworkManager", "0ad"] {
            PackageName::parse(name).unwrap();
        }
        for v in ["1:2.36-9+deb12u4", "5.14.0-362.el9", "1.0~rc1-1", "1.2.3^20240101git", "6.6.1.arch1-1", "1.2_p3-r0"]
        {
            PackageVersion::parse(v).unwrap();
        }
    }

    #[test]
    fn refuses_option_and_path_injection() {
        for bad in ["-oAPT::Get::Foo=1", "--root=/", "../etc/passwd", "a..b", "", " x", "x y", "a/b", "a;b", "a$b", "ä"]
        {
            assert!(PackageName::parse(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["-1", "1..2", "1 2", "1/2", "", "1;rm"] {
            assert!(PackageVersion::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = "a".repeat(MAX_LEN + 1);
        assert!(PackageName::parse(&long).is_err());
        assert!(PackageName::parse(&long[..MAX_LEN]).is_ok());
    }

    #[test]
    fn error_names_the_input_and_the_rule() {
        let msg = PackageName::parse("-x").unwrap_err().to_string();
        assert_eq!(msg, r#"invalid package name "-x": must start with a letter or digit (got '-')"#);
        let msg = PackageVersion::parse("1 2").unwrap_err().to_string();
        assert_eq!(
            msg,
            r#"invalid package version "1 2": contains ' '; allowed are letters, digits and + . : ~ _ - ^"#
        );
    }

    #[test]
    fn specs_and_pins() {
        let spec = PackageSpec::parse("hello=1:1.0-1").unwrap();
        assert_eq!(spec.to_string(), "hello=1:1.0-1");
        assert_eq!(PackageSpec::parse("hello").unwrap().version, None);
        assert!(Pin::parse("hello").is_err());
        assert!(Pin::parse("hello=").is_err());
        assert!(Pin::parse("=1.0").is_err());
        assert_eq!(
            Pin::parse("a=1=2").unwrap_err().to_string(),
            r#"invalid package version "1=2": contains '='; allowed are letters, digits and + . : ~ _ - ^"#
        );
    }

    proptest! {
        #[test]
        fn nothing_accepted_can_look_like_an_option(s in ".{0,40}") {
            if let Ok(name) = PackageName::parse(&s) {
                prop_assert!(!name.as_str().starts_with('-'));
                prop_assert!(!name.as_str().contains('/'));
            }
            if let Ok(v) = PackageVersion::parse(&s) {
                prop_assert!(!v.as_str().starts_with('-'));
                prop_assert!(!v.as_str().contains(char::is_whitespace));
            }
        }
    }
}
