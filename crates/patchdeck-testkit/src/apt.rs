//! An apt/dpkg sandbox: an empty install root, two local repositories and an
//! `apt.conf` that points apt at them (the recipe of
//! `crates/patchdeck-pkg/tests/apt.rs`: `APT_CONFIG` and
//! [`BackendOptions::config_file`]).
//!
//! The default repositories:
//!
//! * `main` (suite `stable`, label `Local`): `hello` 1.0-1 and 1.1-1 (source
//!   package `hello-src`), `other` 1.0-1, `grower` 1.0-1 and 2.0-1 (2.0-1
//!   depends on the new package `newdep` 1.0-1);
//! * `sec` (suite `stable-security`, label `Local-Security`): `other` 1.2-1,
//!   the security update.
//!
//! Packages carry no maintainer scripts, so dpkg never runs anything inside
//! the root, and nothing outside the sandbox's tempdir is touched.
//!
//! [`AptSandboxBuilder::dpkg_gate`] puts a wrapper in front of dpkg (apt's
//! `Dir::Bin::dpkg`): every dpkg run that changes packages (`--unpack`,
//! `--configure`, `--remove`, …) first appends its pid to
//! [`AptSandbox::gate_pids_file`] and then waits until [`AptSandbox::open_gate`]
//! is called. That holds a real package transaction in flight for as long as
//! a test needs, or forever (a hung package manager).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use patchdeck_pkg::{open, BackendOptions, PackageManager};
use patchdeck_proto::BackendKind;

/// Programs the sandbox needs, with the Debian package that ships each.
const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("dpkg", "dpkg"),
    ("dpkg-deb", "dpkg"),
    ("dpkg-query", "dpkg"),
    ("apt-ftparchive", "apt-utils"),
];

/// Which repository a package goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repo {
    /// Suite `stable`, label `Local`.
    Main,
    /// Suite `stable-security`, label `Local-Security`.
    Security,
}

/// One binary package to build into a repository.
#[derive(Debug, Clone)]
pub struct Deb {
    pub name: String,
    pub version: String,
    pub repo: Repo,
    /// Extra control fields, each ending in a newline (`Depends: x\n`).
    pub extra: String,
}

impl Deb {
    pub fn new(name: &str, version: &str, repo: Repo, extra: &str) -> Deb {
        Deb { name: name.to_owned(), version: version.to_owned(), repo, extra: extra.to_owned() }
    }

    fn file_name(&self) -> String {
        format!("{}_{}_all.deb", self.name, self.version)
    }
}

/// The default packages (see the module docs).
pub fn default_debs() -> Vec<Deb> {
    vec![
        Deb::new("hello", "1.0-1", Repo::Main, "Source: hello-src\n"),
        Deb::new("hello", "1.1-1", Repo::Main, "Source: hello-src\n"),
        Deb::new("other", "1.0-1", Repo::Main, ""),
        Deb::new("other", "1.2-1", Repo::Security, ""),
        Deb::new("grower", "1.0-1", Repo::Main, ""),
        Deb::new("grower", "2.0-1", Repo::Main, "Depends: newdep\n"),
        Deb::new("newdep", "1.0-1", Repo::Main, ""),
    ]
}

/// Panics naming the tool and its Debian package when one is missing.
pub fn require_tools() {
    for (program, package) in TOOLS {
        assert!(
            patchdeck_pkg::detect::find_program(program).is_some(),
            "`{program}` is not installed: install the Debian package `{package}` to run the apt sandbox tests"
        );
    }
}

/// Runs a setup command and returns its stdout; panics with its output when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn native_arch() -> &'static str {
    static ARCH: OnceLock<String> = OnceLock::new();
    ARCH.get_or_init(|| {
        require_tools();
        run(Command::new("dpkg").arg("--print-architecture")).trim().to_owned()
    })
}

/// Builds an [`AptSandbox`].
#[derive(Debug, Clone)]
pub struct AptSandboxBuilder {
    debs: Vec<Deb>,
    install: Vec<String>,
    dpkg_gate: bool,
    lock_wait: Duration,
    transaction_timeout: Duration,
}

impl Default for AptSandboxBuilder {
    fn default() -> Self {
        AptSandboxBuilder {
            debs: default_debs(),
            install: Vec::new(),
            dpkg_gate: false,
            lock_wait: Duration::from_secs(10),
            transaction_timeout: Duration::from_secs(120),
        }
    }
}

impl AptSandboxBuilder {
    /// Adds a package to the repositories.
    pub fn deb(mut self, deb: Deb) -> Self {
        self.debs.push(deb);
        self
    }

    /// After building, refreshes and installs these `name=version` specs
    /// with apt-get directly (not through the code under test).
    pub fn installed(mut self, specs: &[&str]) -> Self {
        self.install.extend(specs.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Holds every package-changing dpkg run until [`AptSandbox::open_gate`].
    pub fn dpkg_gate(mut self) -> Self {
        self.dpkg_gate = true;
        self
    }

    /// [`BackendOptions::lock_wait`] of [`AptSandbox::options`].
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// [`BackendOptions::transaction_timeout`] of [`AptSandbox::options`].
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    pub fn build(self) -> AptSandbox {
        let native = native_arch();
        let dir = tempfile::tempdir().expect("create the sandbox tempdir");
        let work = dir.path().to_owned();
        let root = work.join("root");
        let (main, sec) = (work.join("main"), work.join("sec"));
        for d in [&main, &sec] {
            fs::create_dir_all(d).expect("create a repository directory");
        }
        let sandbox_repo = |repo: Repo| if repo == Repo::Main { main.clone() } else { sec.clone() };
        for deb in &self.debs {
            build_deb(&work, deb, &sandbox_repo(deb.repo));
        }
        for d in [
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
        ] {
            fs::create_dir_all(root.join(d)).expect("create the sandbox root");
        }
        fs::write(root.join("var/lib/dpkg/status"), "").expect("write dpkg status");
        fs::write(
            root.join("etc/apt/sources.list"),
            format!("deb [trusted=yes] file:{} ./\ndeb [trusted=yes] file:{} ./\n", main.display(), sec.display()),
        )
        .expect("write sources.list");
        let r = root.display();
        let mut conf = format!(
            "Dir \"{r}/\";\nDir::State::status \"{r}/var/lib/dpkg/status\";\nDPkg::Options:: \"--root={r}\";\nAPT::Sandbox::User \"root\";\nAPT::Architecture \"{native}\";\nAPT::Architectures {{ \"{native}\"; }};\n"
        );
        if self.dpkg_gate {
            let wrapper = write_dpkg_gate(&work);
            conf.push_str(&format!("Dir::Bin::dpkg \"{}\";\n", wrapper.display()));
        }
        let apt_conf = work.join("apt.conf");
        fs::write(&apt_conf, conf).expect("write apt.conf");

        let sandbox = AptSandbox {
            _dir: dir,
            work,
            root,
            apt_conf,
            main,
            sec,
            lock_wait: self.lock_wait,
            transaction_timeout: self.transaction_timeout,
        };
        sandbox.index_repos();
        if !self.install.is_empty() {
            sandbox.refresh();
            let was_gated = self.dpkg_gate;
            if was_gated {
                sandbox.open_gate();
            }
            let mut args = vec!["-y", "install", "--"];
            args.extend(self.install.iter().map(String::as_str));
            sandbox.tool("apt-get", &args);
            if was_gated {
                sandbox.close_gate();
            }
        }
        sandbox
    }
}

fn build_deb(work: &Path, deb: &Deb, repo: &Path) {
    let (name, version) = (&deb.name, &deb.version);
    let d = work.join(format!("build/{name}_{version}"));
    fs::create_dir_all(d.join("DEBIAN")).expect("create a package build dir");
    fs::create_dir_all(d.join(format!("usr/share/doc/{name}"))).expect("create a package build dir");
    fs::write(
        d.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\nInstalled-Size: 8\nDescription: test package\n{}",
            deb.extra
        ),
    )
    .expect("write a control file");
    fs::write(d.join(format!("usr/share/doc/{name}/README")), format!("{name} {version}\n")).expect("write a file");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&d)
        .arg(repo.join(deb.file_name())));
}

/// Writes the gated dpkg wrapper (see the module docs) and returns its path.
fn write_dpkg_gate(work: &Path) -> PathBuf {
    let real = patchdeck_pkg::detect::find_program("dpkg").expect("dpkg is installed");
    let bin = work.join("bin");
    fs::create_dir_all(&bin).expect("create the wrapper dir");
    let wrapper = bin.join("dpkg");
    let gate = work.join("gate-open");
    let pids = work.join("gate-pids");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in\n  *\" --unpack \"*|*\" --configure \"*|*\" --install \"*|*\" --remove \"*|*\" --purge \"*)\n    echo $$ >> '{pids}'\n    while [ ! -e '{gate}' ]; do sleep 0.1; done ;;\nesac\nexec '{real}' \"$@\"\n",
            pids = pids.display(),
            gate = gate.display(),
            real = real.display(),
        ),
    )
    .expect("write the dpkg wrapper");
    let mut perms = fs::metadata(&wrapper).expect("stat the wrapper").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(&wrapper, perms).expect("make the wrapper executable");
    wrapper
}

/// A built apt sandbox; everything lives in a tempdir removed on drop.
#[derive(Debug)]
pub struct AptSandbox {
    _dir: tempfile::TempDir,
    /// The tempdir: repositories, build dirs, apt.conf and the root.
    pub work: PathBuf,
    /// The install root (dpkg `--root`).
    pub root: PathBuf,
    /// The sandbox's apt.conf (`APT_CONFIG`).
    pub apt_conf: PathBuf,
    main: PathBuf,
    sec: PathBuf,
    lock_wait: Duration,
    transaction_timeout: Duration,
}

impl AptSandbox {
    pub fn builder() -> AptSandboxBuilder {
        AptSandboxBuilder::default()
    }

    /// Backend options that drive this sandbox.
    pub fn options(&self) -> BackendOptions {
        BackendOptions {
            config_file: Some(self.apt_conf.clone()),
            query_timeout: Duration::from_secs(60),
            refresh_timeout: Duration::from_secs(60),
            transaction_timeout: self.transaction_timeout,
            lock_wait: self.lock_wait,
            ..BackendOptions::with_root(&self.root)
        }
    }

    /// The apt backend on this sandbox.
    pub fn package_manager(&self) -> Box<dyn PackageManager> {
        open(BackendKind::Apt, self.options())
    }

    /// Runs an apt tool directly in the sandbox (setup and cross-checks only).
    pub fn tool(&self, program: &str, args: &[&str]) -> String {
        run(Command::new(program).env("APT_CONFIG", &self.apt_conf).env("LC_ALL", "C").args(args))
    }

    /// `apt-get update`, directly.
    pub fn refresh(&self) {
        self.tool("apt-get", &["update"]);
    }

    /// (name, version) of every installed package, from dpkg-query directly, sorted.
    pub fn versions(&self) -> Vec<(String, String)> {
        let out = run(Command::new("dpkg-query")
            .arg(format!("--admindir={}", self.root.join("var/lib/dpkg").display()))
            .args(["-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n"]));
        let mut versions: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let (name, version, status) = (words.next()?, words.next()?, words.next()?);
                status.starts_with("ii").then(|| (name.to_owned(), version.to_owned()))
            })
            .collect();
        versions.sort();
        versions
    }

    /// The installed version of `name`, if it is installed.
    pub fn version_of(&self, name: &str) -> Option<String> {
        self.versions().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Deletes `name` `version` from its repository and re-indexes (the
    /// package manager sees it gone after its next refresh).
    pub fn remove_from_repo(&self, name: &str, version: &str) {
        let file = format!("{name}_{version}_all.deb");
        let mut removed = false;
        for repo in [&self.main, &self.sec] {
            if fs::remove_file(repo.join(&file)).is_ok() {
                removed = true;
            }
        }
        assert!(removed, "{file} is in no sandbox repository");
        self.index_repos();
    }

    /// Makes the root say it needs a reboot (`/var/run/reboot-required`).
    pub fn set_reboot_required(&self) {
        fs::create_dir_all(self.root.join("var/run")).expect("create var/run");
        fs::write(self.root.join("var/run/reboot-required"), "*** System restart required ***\n")
            .expect("write reboot-required");
    }

    /// Lets every held and future dpkg run of a [`AptSandboxBuilder::dpkg_gate`] sandbox go on.
    pub fn open_gate(&self) {
        fs::write(self.work.join("gate-open"), "").expect("open the dpkg gate");
    }

    /// Holds dpkg runs again, and forgets the pids of earlier runs.
    pub fn close_gate(&self) {
        let _ = fs::remove_file(self.work.join("gate-open"));
        let _ = fs::remove_file(self.gate_pids_file());
    }

    /// Where the gated wrapper appends the pid of each dpkg run it gates
    /// (held, or let through while the gate is open).
    pub fn gate_pids_file(&self) -> PathBuf {
        self.work.join("gate-pids")
    }

    /// The pids of the dpkg runs that reached the gate since it was last closed.
    pub fn gated_pids(&self) -> Vec<i32> {
        fs::read_to_string(self.gate_pids_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn index_repos(&self) {
        for (repo, suite, label) in [(&self.main, "stable", "Local"), (&self.sec, "stable-security", "Local-Security")]
        {
            let packages = run(Command::new("apt-ftparchive").arg("packages").arg(".").current_dir(repo));
            fs::write(repo.join("Packages"), packages).expect("write Packages");
            let _ = fs::remove_file(repo.join("Release"));
            let release = run(Command::new("apt-ftparchive")
                .args(["-o", "APT::FTPArchive::Release::Origin=Local"])
                .arg(format!("-oAPT::FTPArchive::Release::Suite={suite}"))
                .arg(format!("-oAPT::FTPArchive::Release::Label={label}"))
                .args(["release", "."])
                .current_dir(repo));
            fs::write(repo.join("Release"), release).expect("write Release");
        }
    }
}

impl Drop for AptSandbox {
    /// Lets any dpkg run still held go on (against a root about to be
    /// deleted, so it fails at once), so a failing test does not leave apt
    /// waiting at the gate until its timeout.
    fn drop(&mut self) {
        let _ = fs::write(self.work.join("gate-open"), "");
    }
}

// ---------------------------------------------------------------------------------------------
// Many packages at once (benchmarks)

impl AptSandbox {
    /// Puts `count` tiny script-free packages `{prefix}{i:05}` (version 1.0-1, and 1.1-1 in the
    /// main repository for every `update_every`-th one, 0 for none) into the main repository and
    /// installs every 1.0-1 with the real dpkg (one `dpkg --install` run, `--force-unsafe-io`),
    /// then re-indexes and refreshes. Returns the package names.
    ///
    /// The `.deb` files are written directly (an `ar` archive of `debian-binary` and uncompressed
    /// `control.tar` and `data.tar`, the format dpkg-deb makes with `-Znone`) instead of running
    /// dpkg-deb once per package, which costs tens of milliseconds each. dpkg still unpacks and
    /// configures every one of them.
    pub fn install_many(&self, prefix: &str, count: usize, update_every: usize) -> Vec<String> {
        let stage = self.work.join("bulk");
        fs::create_dir_all(&stage).expect("create the bulk stage dir");
        let mut names = Vec::with_capacity(count);
        let mut files = Vec::with_capacity(count);
        for i in 0..count {
            let name = format!("{prefix}{i:05}");
            let file = self.main.join(format!("{name}_1.0-1_all.deb"));
            fs::write(&file, tiny_deb(&name, "1.0-1")).expect("write a .deb");
            if update_every > 0 && i % update_every == 0 {
                fs::write(self.main.join(format!("{name}_1.1-1_all.deb")), tiny_deb(&name, "1.1-1"))
                    .expect("write a .deb");
            }
            files.push(file);
            names.push(name);
        }
        run(Command::new("dpkg")
            .arg(format!("--root={}", self.root.display()))
            .args(["--force-unsafe-io", "--no-triggers", "--install"])
            .args(&files)
            .env("LC_ALL", "C"));
        self.index_repos();
        self.refresh();
        names
    }
}

/// A `.deb` with no maintainer scripts and one file, `/usr/share/doc/<name>/README`.
fn tiny_deb(name: &str, version: &str) -> Vec<u8> {
    let control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\nInstalled-Size: 8\nDescription: benchmark package\n"
    );
    let readme = format!("{name} {version}\n");
    let mut control_tar = Vec::new();
    tar_entry(&mut control_tar, "./", None);
    tar_entry(&mut control_tar, "./control", Some(control.as_bytes()));
    control_tar.extend_from_slice(&[0; 1024]);
    let mut data_tar = Vec::new();
    for dir in ["./", "./usr/", "./usr/share/", "./usr/share/doc/"] {
        tar_entry(&mut data_tar, dir, None);
    }
    tar_entry(&mut data_tar, &format!("./usr/share/doc/{name}/"), None);
    tar_entry(&mut data_tar, &format!("./usr/share/doc/{name}/README"), Some(readme.as_bytes()));
    data_tar.extend_from_slice(&[0; 1024]);

    let mut deb = b"!<arch>\n".to_vec();
    for (member, body) in [("debian-binary", &b"2.0\n"[..]), ("control.tar", &control_tar), ("data.tar", &data_tar)] {
        deb.extend_from_slice(
            format!("{member:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 100644, body.len()).as_bytes(),
        );
        deb.extend_from_slice(body);
        if body.len() % 2 == 1 {
            deb.push(b'\n');
        }
    }
    deb
}

/// Appends one ustar entry (a directory when `body` is `None`) owned by root:root.
fn tar_entry(out: &mut Vec<u8>, path: &str, body: Option<&[u8]>) {
    assert!(path.len() < 100, "tar path too long: {path}");
    let mut header = [0u8; 512];
    let mut put = |offset: usize, value: &[u8]| header[offset..offset + value.len()].copy_from_slice(value);
    let (mode, size, kind) = match body {
        Some(b) => (0o644, b.len(), b'0'),
        None => (0o755, 0, b'5'),
    };
    put(0, path.as_bytes());
    put(100, format!("{mode:07o}\0").as_bytes());
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, format!("{:011o}\0", 1_700_000_000u64).as_bytes());
    put(148, b"        ");
    put(156, &[kind]);
    put(257, b"ustar\0");
    put(263, b"00");
    put(265, b"root");
    put(297, b"root");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&header);
    if let Some(b) = body {
        out.extend_from_slice(b);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
}
