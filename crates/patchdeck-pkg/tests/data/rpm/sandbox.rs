//! A throw-away rpm-md repository for the dnf and zypper integration tests
//! (included by both with `#[path]`; recipe: rpmbuild --nodeps, createrepo_c, modifyrepo_c).
//!
//! Packages, all `noarch`, script-free (no `%post`: that would need `/bin/sh`
//! in the root), built with `rpmbuild --nodeps` (without it rpmbuild opens the
//! host's rpm database):
//! * `hello` 1.0-1 and 1.1-1, built from source package `hello-src` (a
//!   sub-package `%package -n hello` of a spec named `hello-src`);
//! * `other` 1:1.0-1 and 1:1.2-1 (Epoch 1, to exercise epochs end to end),
//!   with an updateinfo advisory TEST-SA-1, type security, severity
//!   Important, reference CVE-2026-0001, for `other` 1:1.2-1.
//!
//! `HOME` points at `<dir>/home` whose `.rpmmacros` sets `%_dbpath
//! /var/lib/rpm`: Debian's rpm otherwise uses `~/.rpmdb`, and dnf, zypper
//! and our own `rpm -qa` would not agree on the database.

use std::path::PathBuf;
use std::process::Command;

use patchdeck_pkg::{PackageManager, PackageSpec, Pin};
use patchdeck_proto::Transaction;

/// Fails the test (never skips it) when a tool is missing.
pub fn require(program: &str, debian_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(found, "`{program}` is not installed: apt-get install {debian_package}");
}

/// Runs a setup command; panics with its output when it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const SPEC: &str = r#"Name: %{srcname}
Version: %{pver}
Release: 1
%{?pepoch:Epoch: %{pepoch}}
Summary: patchdeck test package
License: MIT
BuildArch: noarch
%description
patchdeck test package
%package -n %{pname}
Summary: patchdeck test package
%description -n %{pname}
patchdeck test package
%install
mkdir -p %{buildroot}/usr/share/%{pname}
echo %{version} > %{buildroot}/usr/share/%{pname}/version
%files -n %{pname}
/usr/share/%{pname}/version
"#;

/// The same spec for packages whose source package has their own name.
const SPEC_SAME_NAME: &str = r#"Name: %{pname}
Version: %{pver}
Release: 1
%{?pepoch:Epoch: %{pepoch}}
Summary: patchdeck test package
License: MIT
BuildArch: noarch
%description
patchdeck test package
%install
mkdir -p %{buildroot}/usr/share/%{pname}
echo %{version} > %{buildroot}/usr/share/%{pname}/version
%files
/usr/share/%{pname}/version
"#;

const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="test@example.com" status="stable" type="security" version="1.0">
    <id>TEST-SA-1</id>
    <title>other security update</title>
    <severity>Important</severity>
    <issued date="2026-01-01 00:00:00"/>
    <references>
      <reference href="https://www.cve.org/CVERecord?id=CVE-2026-0001" id="CVE-2026-0001" type="cve" title="CVE-2026-0001"/>
    </references>
    <description>Fixes CVE-2026-0001.</description>
    <pkglist>
      <collection short="test">
        <name>test</name>
        <package name="other" version="1.2" release="1" epoch="1" arch="noarch">
          <filename>other-1.2-1.noarch.rpm</filename>
        </package>
      </collection>
    </pkglist>
  </update>
</updates>
"#;

/// A sandbox: `repo/` (rpm-md with updateinfo), `root/` (empty install root), `home/`.
#[derive(Debug)]
pub struct RpmSandbox {
    pub dir: tempfile::TempDir,
}

impl RpmSandbox {
    pub fn new() -> RpmSandbox {
        require("rpmbuild", "rpm");
        require("createrepo_c", "createrepo-c");
        require("modifyrepo_c", "createrepo-c");
        let dir = tempfile::tempdir().expect("tempdir");
        let w = dir.path();
        for sub in ["home", "top", "repo", "root"] {
            std::fs::create_dir_all(w.join(sub)).expect("mkdir");
        }
        std::fs::write(w.join("home/.rpmmacros"), "%_dbpath /var/lib/rpm\n").expect("rpmmacros");
        std::fs::write(w.join("t.spec"), SPEC).expect("spec");
        std::fs::write(w.join("s.spec"), SPEC_SAME_NAME).expect("spec");
        let build = |spec: &str, defines: &[(&str, &str)]| {
            let mut cmd = Command::new("rpmbuild");
            cmd.env("HOME", w.join("home")).args(["-bb", "--quiet", "--nodeps"]);
            let top = format!("_topdir {}", w.join("top").display());
            let rpmdir = format!("_rpmdir {}", w.join("repo").display());
            cmd.arg("--define").arg(top).arg("--define").arg(rpmdir);
            for (k, v) in defines {
                cmd.arg("--define").arg(format!("{k} {v}"));
            }
            run(cmd.arg(w.join(spec)));
        };
        for v in ["1.0", "1.1"] {
            build("t.spec", &[("srcname", "hello-src"), ("pname", "hello"), ("pver", v)]);
        }
        for v in ["1.0", "1.2"] {
            build("s.spec", &[("pname", "other"), ("pver", v), ("pepoch", "1")]);
        }
        std::fs::write(w.join("updateinfo.xml"), UPDATEINFO).expect("updateinfo");
        run(Command::new("createrepo_c").arg("-q").arg(w.join("repo")));
        run(Command::new("modifyrepo_c")
            .arg("--mdtype=updateinfo")
            .arg(w.join("updateinfo.xml"))
            .arg(w.join("repo/repodata")));
        RpmSandbox { dir }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    pub fn root(&self) -> PathBuf {
        self.path("root")
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// `HOME` for every command that reads the rpm database.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("HOME".to_owned(), self.path("home").display().to_string())]
    }
}

pub fn spec(s: &str) -> PackageSpec {
    PackageSpec::parse(s).unwrap()
}

/// `name=version`, parsed.
pub fn pin(s: &str) -> Pin {
    Pin::parse(s).unwrap()
}

/// `name version` of every installed package.
pub fn versions(pm: &dyn PackageManager) -> Vec<String> {
    pm.installed().unwrap().iter().map(|p| format!("{} {}", p.name, p.version)).collect()
}

/// A transaction as readable rows: `action name from -> to (arch)`.
pub fn rows(tx: &Transaction) -> Vec<String> {
    tx.items
        .iter()
        .map(|i| {
            format!(
                "{} {} {} -> {} ({})",
                i.action.as_str(),
                i.name,
                i.from.as_deref().unwrap_or("-"),
                i.to.as_deref().unwrap_or("-"),
                i.arch.as_deref().unwrap_or("-")
            )
        })
        .collect()
}
