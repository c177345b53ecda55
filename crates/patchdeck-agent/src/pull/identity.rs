//! What an enrolled agent keeps in `<state_dir>/pull/`, and the facts it tells the manager
//! about its host (machine ID, host name, addresses).
//!
//! ```text
//! pull/identity.json   server URL, host id, machine ID, the pinned command key and fingerprint
//! pull/client.key      the agent's private key (0600)
//! pull/client.crt      its certificate
//! pull/ca.crt          the CA certificate(s) trusted for the manager
//! ```
//!
//! The key and certificate are replaced as a pair (enrollment with `--force`, renewal) without a
//! window in which a crash leaves a key that does not match its certificate: both new files are
//! first written durably as `client.key.new` and `client.crt.new`, then renamed in that order.
//! [`recover_pair`], run before every load, finishes or discards an interrupted swap:
//!
//! | found after a crash | meaning | action |
//! |---|---|---|
//! | `client.key.new` only | the pair was still being written | delete it; the old pair stays |
//! | both `.new` files | written, not yet swapped | swap both |
//! | `client.crt.new` only | the key was swapped, the certificate not yet | swap the certificate |

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use patchdeck_crypto::signing::VerifyingKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::fs;

/// Reads the machine ID from this file instead of `/etc/machine-id` (tests, containers that
/// share one machine ID).
pub const MACHINE_ID_FILE_ENV: &str = "PATCHDECK_MACHINE_ID_FILE";

/// Where the machine ID is looked for, in order.
pub const MACHINE_ID_FILES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

const IDENTITY_FORMAT: u32 = 1;

/// The files of pull mode under a state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPaths {
    dir: PathBuf,
}

impl PullPaths {
    pub fn new(state_dir: &Path) -> Self {
        PullPaths { dir: state_dir.join("pull") }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn identity(&self) -> PathBuf {
        self.dir.join("identity.json")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    pub fn client_crt(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn ca_crt(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    /// The key of an enrollment that is still going on (waiting for approval).
    pub fn enroll_key(&self) -> PathBuf {
        self.dir.join("enroll.key")
    }
    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }
    pub fn seen(&self) -> PathBuf {
        self.dir.join("seen.json")
    }
    pub fn commands(&self) -> PathBuf {
        self.dir.join("commands.json")
    }
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.json")
    }
    fn staged(path: PathBuf) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".new");
        path.with_file_name(name)
    }
    pub fn client_key_new(&self) -> PathBuf {
        Self::staged(self.client_key())
    }
    pub fn client_crt_new(&self) -> PathBuf {
        Self::staged(self.client_crt())
    }
}

/// A state file is missing, unreadable or inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("no machine ID: {0}")]
    MachineId(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io { path: path.to_owned(), source }
}

/// `pull/identity.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    pub format: u32,
    /// The manager's base URL, e.g. `https://manager.example:8443`.
    pub server: String,
    pub host_id: i64,
    pub machine_id: String,
    /// The manager's Ed25519 command-signing key (standard base64), pinned at enrollment.
    pub command_key: String,
    /// `SHA256:...` of that key.
    pub command_key_fingerprint: String,
    pub enrolled_at: Timestamp,
}

/// An enrolled agent: who it is, whom it trusts, and its key pair.
#[derive(Clone)]
pub struct Identity {
    pub server: String,
    pub host_id: i64,
    pub machine_id: String,
    pub command_key: VerifyingKey,
    pub command_key_fingerprint: String,
    pub enrolled_at: Timestamp,
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
    pub ca_pem: String,
    /// Validity of the client certificate.
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("server", &self.server)
            .field("host_id", &self.host_id)
            .field("machine_id", &self.machine_id)
            .field("command_key_fingerprint", &self.command_key_fingerprint)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// `notBefore` and `notAfter` of the first certificate in `pem`.
pub fn validity_of(pem: &str) -> Result<(Timestamp, Timestamp), String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("no PEM certificate: {e}"))?;
    if block.label != "CERTIFICATE" {
        return Err(format!("found a {:?} block, expected CERTIFICATE", block.label));
    }
    let cert = block.parse_x509().map_err(|e| format!("invalid certificate: {e}"))?;
    let ts = |t: x509_parser::time::ASN1Time| Timestamp::from_second(t.timestamp()).map_err(|e| e.to_string());
    Ok((ts(cert.validity().not_before)?, ts(cert.validity().not_after)?))
}

/// Checks the command key and its fingerprint as the manager sent them.
pub fn parse_command_key(command_key: &str, fingerprint: &str) -> Result<VerifyingKey, String> {
    let key = VerifyingKey::from_base64(command_key).map_err(|e| e.to_string())?;
    if key.fingerprint() != fingerprint {
        return Err(format!(
            "the command key's fingerprint is {}, but {fingerprint} was given for it",
            key.fingerprint()
        ));
    }
    Ok(key)
}

impl Identity {
    /// Loads the identity, first finishing an interrupted key swap. `Ok(None)`: not enrolled.
    pub fn load(paths: &PullPaths) -> Result<Option<Identity>, IdentityError> {
        let identity_path = paths.identity();
        let file: IdentityFile = match fs::read_json(&identity_path) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                return Err(IdentityError::Invalid { path: identity_path, reason: err.to_string() })
            }
            Err(err) => return Err(IdentityError::Io { path: identity_path, source: err }),
        };
        recover_pair(paths).map_err(io_error(paths.dir()))?;
        let invalid = |path: PathBuf, reason: String| IdentityError::Invalid { path, reason };
        if file.format != IDENTITY_FORMAT {
            return Err(invalid(identity_path, format!("unknown format {}", file.format)));
        }
        let command_key = parse_command_key(&file.command_key, &file.command_key_fingerprint)
            .map_err(|reason| invalid(identity_path.clone(), reason))?;
        let read = |path: PathBuf| std::fs::read_to_string(&path).map_err(|source| IdentityError::Io { path, source });
        let cert_pem = read(paths.client_crt())?;
        let key_pem = Zeroizing::new(read(paths.client_key())?);
        let ca_pem = read(paths.ca_crt())?;
        let (not_before, not_after) = validity_of(&cert_pem).map_err(|reason| invalid(paths.client_crt(), reason))?;
        validity_of(&ca_pem).map_err(|reason| invalid(paths.ca_crt(), reason))?;
        Ok(Some(Identity {
            server: file.server,
            host_id: file.host_id,
            machine_id: file.machine_id,
            command_key,
            command_key_fingerprint: file.command_key_fingerprint,
            enrolled_at: file.enrolled_at,
            cert_pem,
            key_pem,
            ca_pem,
            not_before,
            not_after,
        }))
    }

    /// The identity file's content.
    pub fn file(&self) -> IdentityFile {
        IdentityFile {
            format: IDENTITY_FORMAT,
            server: self.server.clone(),
            host_id: self.host_id,
            machine_id: self.machine_id.clone(),
            command_key: self.command_key.to_base64(),
            command_key_fingerprint: self.command_key_fingerprint.clone(),
            enrolled_at: self.enrolled_at,
        }
    }

    /// Writes a new identity (enrollment): the staged key pair and the CA first, the identity
    /// file, then the swap, so that a crash at any point leaves either the previous state or one
    /// that [`Identity::load`] completes.
    pub fn save(&self, paths: &PullPaths) -> Result<(), IdentityError> {
        fs::create_private_dir(paths.dir()).map_err(io_error(paths.dir()))?;
        stage_pair(paths, &self.key_pem, &self.cert_pem)?;
        fs::write_atomic(&paths.ca_crt(), self.ca_pem.as_bytes(), fs::PUBLIC_MODE)
            .map_err(io_error(&paths.ca_crt()))?;
        fs::write_json(&paths.identity(), &self.file(), fs::PUBLIC_MODE).map_err(io_error(&paths.identity()))?;
        commit_pair(paths)
    }

    /// Replaces the key pair (renewal), and the CA file when it changed.
    pub fn replace_certificate(
        &mut self,
        paths: &PullPaths,
        key_pem: Zeroizing<String>,
        cert_pem: String,
        ca_pem: Option<String>,
    ) -> Result<(), IdentityError> {
        let (not_before, not_after) =
            validity_of(&cert_pem).map_err(|reason| IdentityError::Invalid { path: paths.client_crt(), reason })?;
        stage_pair(paths, &key_pem, &cert_pem)?;
        commit_pair(paths)?;
        self.key_pem = key_pem;
        self.cert_pem = cert_pem;
        self.not_before = not_before;
        self.not_after = not_after;
        if let Some(ca_pem) = ca_pem.filter(|ca| *ca != self.ca_pem) {
            fs::write_atomic(&paths.ca_crt(), ca_pem.as_bytes(), fs::PUBLIC_MODE).map_err(io_error(&paths.ca_crt()))?;
            self.ca_pem = ca_pem;
        }
        Ok(())
    }
}

/// Writes the new pair durably next to the old one (`.new`): key first, then certificate.
fn stage_pair(paths: &PullPaths, key_pem: &str, cert_pem: &str) -> Result<(), IdentityError> {
    let key_new = paths.client_key_new();
    fs::write_atomic(&key_new, key_pem.as_bytes(), fs::SECRET_MODE).map_err(io_error(&key_new))?;
    let crt_new = paths.client_crt_new();
    fs::write_atomic(&crt_new, cert_pem.as_bytes(), fs::PUBLIC_MODE).map_err(io_error(&crt_new))
}

/// Puts a staged pair in place: key, then certificate.
fn commit_pair(paths: &PullPaths) -> Result<(), IdentityError> {
    fs::rename_durable(&paths.client_key_new(), &paths.client_key()).map_err(io_error(&paths.client_key()))?;
    fs::rename_durable(&paths.client_crt_new(), &paths.client_crt()).map_err(io_error(&paths.client_crt()))
}

/// Finishes or discards a key swap that a crash interrupted (see the module docs).
pub fn recover_pair(paths: &PullPaths) -> io::Result<()> {
    let (key_new, crt_new) = (paths.client_key_new(), paths.client_crt_new());
    match (key_new.exists(), crt_new.exists()) {
        (true, false) => {
            tracing::warn!(path = %key_new.display(), "discarding a new key whose certificate was never stored");
            fs::remove_durable(&key_new)
        }
        (true, true) => {
            tracing::warn!("finishing a certificate swap interrupted by a crash");
            fs::rename_durable(&key_new, &paths.client_key())?;
            fs::rename_durable(&crt_new, &paths.client_crt())
        }
        (false, true) => {
            tracing::warn!("finishing a certificate swap interrupted by a crash");
            fs::rename_durable(&crt_new, &paths.client_crt())
        }
        (false, false) => Ok(()),
    }
}

/// The machine ID: [`MACHINE_ID_FILE_ENV`] when set, else the first of [`MACHINE_ID_FILES`]
/// that exists. 32 hexadecimal digits, returned in lower case.
pub fn read_machine_id() -> Result<String, IdentityError> {
    let candidates: Vec<PathBuf> = match std::env::var_os(MACHINE_ID_FILE_ENV) {
        Some(path) if !path.is_empty() => vec![PathBuf::from(path)],
        _ => MACHINE_ID_FILES.iter().map(PathBuf::from).collect(),
    };
    let mut tried = Vec::new();
    for path in &candidates {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return parse_machine_id(&text)
                    .map_err(|reason| IdentityError::MachineId(format!("{}: {reason}", path.display())))
            }
            Err(err) => tried.push(format!("{}: {err}", path.display())),
        }
    }
    Err(IdentityError::MachineId(tried.join("; ")))
}

/// Checks a machine ID (`machine-id(5)`: 32 hexadecimal digits and a newline).
pub fn parse_machine_id(text: &str) -> Result<String, String> {
    let id = text.trim();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        if id.bytes().all(|b| b == b'0') {
            return Err("the machine ID is all zeros (not initialised)".to_owned());
        }
        Ok(id.to_ascii_lowercase())
    } else {
        Err(format!("{id:?} is not a machine ID (32 hexadecimal digits)"))
    }
}

/// What the agent tells the manager about the host at enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub hostname: String,
    pub fqdn: Option<String>,
    pub addresses: Vec<String>,
}

/// This host's name, fully qualified name (from the name itself or `/etc/hosts`, best effort)
/// and addresses (from `/proc/net/fib_trie` and `/proc/net/if_inet6`; loopback and link-local
/// left out).
pub fn host_facts() -> HostFacts {
    let hostname = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let fqdn = fqdn_of(&hostname, &hosts);
    let mut addresses: Vec<IpAddr> = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        addresses.extend(ipv4_from_fib_trie(&text).into_iter().map(IpAddr::V4));
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        addresses.extend(ipv6_from_if_inet6(&text).into_iter().map(IpAddr::V6));
    }
    addresses.sort();
    addresses.dedup();
    HostFacts { hostname, fqdn, addresses: addresses.iter().map(ToString::to_string).collect() }
}

/// The host name when it is already qualified; otherwise the first name on an `/etc/hosts` line
/// naming the host that is qualified and starts with the host name.
pub fn fqdn_of(hostname: &str, hosts: &str) -> Option<String> {
    if hostname.contains('.') {
        return Some(hostname.to_owned());
    }
    let prefix = format!("{hostname}.");
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .filter_map(|line| {
            let names: Vec<&str> = line.split_ascii_whitespace().skip(1).collect();
            names.contains(&hostname).then(|| names.into_iter().find(|n| n.starts_with(&prefix)))?
        })
        .next()
        .map(str::to_owned)
}

fn reportable_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback() || ip.is_link_local() || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast())
}

fn reportable_v6(ip: Ipv6Addr) -> bool {
    let link_local = (ip.segments()[0] & 0xffc0) == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || link_local)
}

/// The host's own IPv4 addresses: the `/32 host LOCAL` entries of `/proc/net/fib_trie`.
pub fn ipv4_from_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(addr) = trimmed.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if trimmed.starts_with("/32 host LOCAL") {
            if let Some(ip) = last.filter(|ip| reportable_v4(*ip) && !out.contains(ip)) {
                out.push(ip);
            }
        }
    }
    out
}

/// The host's IPv6 addresses from `/proc/net/if_inet6` (32 hex digits per address).
pub fn ipv6_from_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_ascii_whitespace().next()?;
            let bits = u128::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 32)?;
            Some(Ipv6Addr::from(bits))
        })
        .filter(|ip| reportable_v6(*ip))
        .collect()
}

/// A common name for the CSR from the host name: the CA ignores it, so anything valid will do.
pub fn csr_common_name(hostname: &str) -> String {
    let cleaned: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(patchdeck_crypto::ca::MAX_HOST_ID_LEN)
        .collect();
    if cleaned.is_empty() {
        "pending".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_are_checked() {
        assert_eq!(parse_machine_id("3D1219C7C4C5404AAA1F6D2A48ADFDA4\n").unwrap(), "3d1219c7c4c5404aaa1f6d2a48adfda4");
        assert!(parse_machine_id("uninitialized\n").is_err());
        assert!(parse_machine_id("00000000000000000000000000000000").unwrap_err().contains("zeros"));
        assert!(parse_machine_id("3d1219c7c4c5404aaa1f6d2a48adfda").is_err());
    }

    #[test]
    fn fqdn_from_the_name_or_etc_hosts() {
        assert_eq!(fqdn_of("web1.example.org", ""), Some("web1.example.org".to_owned()));
        let hosts =
            "127.0.0.1 localhost\n# 10.0.0.9 web1.wrong.example web1\n10.0.0.5 web1.example.org web1 # comment\n";
        assert_eq!(fqdn_of("web1", hosts), Some("web1.example.org".to_owned()));
        assert_eq!(fqdn_of("vm", "127.0.0.1 localhost\n127.0.0.1 vm\n"), None);
    }

    #[test]
    fn addresses_from_recorded_proc_files() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
                   |-- 127.0.0.1\n              /32 host LOCAL\n           |-- 192.0.2.2\n              /32 host LOCAL\n\
                   |-- 192.0.2.255\n           /32 link BROADCAST\n           |-- 169.254.1.1\n  /32 host LOCAL\n\
                   Local:\n           |-- 192.0.2.2\n              /32 host LOCAL\n";
        assert_eq!(ipv4_from_fib_trie(fib), [Ipv4Addr::new(192, 0, 2, 2)]);
        let inet6 = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n\
                     fd000000000000000000000000000002 04 40 00 82     eth0\n\
                     00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(ipv6_from_if_inet6(inet6), ["fd00::2".parse::<Ipv6Addr>().unwrap()]);
    }

    #[test]
    fn this_hosts_facts() {
        let facts = host_facts();
        assert!(!facts.hostname.is_empty());
        for addr in &facts.addresses {
            let ip: IpAddr = addr.parse().unwrap();
            assert!(!ip.is_loopback(), "{addr}");
        }
        assert_eq!(csr_common_name("web 1/x"), "web1x");
        assert_eq!(csr_common_name("***"), "pending");
    }

    #[test]
    fn an_interrupted_swap_is_finished_or_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PullPaths::new(dir.path());
        fs::create_private_dir(paths.dir()).unwrap();
        let write = |p: PathBuf, s: &str| std::fs::write(p, s).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();

        write(paths.client_key(), "old key");
        write(paths.client_crt(), "old crt");
        // Crash while the new pair was being written: the old pair stays.
        write(paths.client_key_new(), "new key");
        recover_pair(&paths).unwrap();
        assert_eq!((read(paths.client_key()), read(paths.client_crt())), ("old key".into(), "old crt".into()));
        assert!(!paths.client_key_new().exists());

        // Both written, not swapped: swapped.
        write(paths.client_key_new(), "new key");
        write(paths.client_crt_new(), "new crt");
        recover_pair(&paths).unwrap();
        assert_eq!((read(paths.client_key()), read(paths.client_crt())), ("new key".into(), "new crt".into()));

        // The key swapped, the certificate not: the certificate follows.
        write(paths.client_key(), "newer key");
        write(paths.client_crt_new(), "newer crt");
        recover_pair(&paths).unwrap();
        assert_eq!((read(paths.client_key()), read(paths.client_crt())), ("newer key".into(), "newer crt".into()));
        assert!(!paths.client_crt_new().exists() && !paths.client_key_new().exists());
    }
}
