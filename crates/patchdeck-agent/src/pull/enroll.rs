//! Enrollment: `patchdeck-agent enroll` and the automatic enrollment of `serve`.
//!
//! 1. Decide whom to trust before the token leaves the host: the CA certificate downloaded from
//!    `GET /api/v1/ca/certificate` (over TLS without verification) when its SHA-256 equals the
//!    fingerprint the administrator gave, or the CA file given. That CA is then the only root.
//! 2. Make a P-256 key (kept in `pull/enroll.key`, mode 0600, before anything is sent) and a CSR,
//!    and `POST /agent/v1/enroll`.
//! 3. While the manager answers `pending_approval`, send the same request again after
//!    `retry_after_secs` (or [`APPROVAL_RETRY_ENV`] seconds, a knob for tests); the key and CSR
//!    survive a restart of the enrollment, so it is the same request even then (without
//!    `--force`).
//! 4. Once enrolled, store the identity ([`Identity::save`]) and pin the command key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use patchdeck_proto::agent::{EnrollRequest, EnrollResponse, Enrollment, PROTOCOL_VERSION};
use reqwest::Method;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::client::{self, ClientError};
use super::fs;
use super::identity::{self, Identity, IdentityError, PullPaths};
use crate::config::Secret;

/// How the agent decides to trust the manager's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// SHA-256 (lower-case hex) of the CA certificate's DER bytes.
    Fingerprint(String),
    /// A PEM file of CA certificates.
    CaFile(PathBuf),
}

/// What to enroll with.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The manager's base URL (checked with [`client::normalize_server`]).
    pub server: String,
    pub token: Secret,
    pub trust: Trust,
    /// Replace an existing enrollment (new key, `"force": true`).
    pub force: bool,
    pub state_dir: PathBuf,
    /// The root whose os-release describes the host (`package_manager.root`).
    pub os_root: PathBuf,
    /// Limit for each request.
    pub request_timeout: Duration,
    /// Ask again about a pending approval after this long instead of the manager's
    /// `retry_after_secs`; from [`APPROVAL_RETRY_ENV`].
    pub approval_retry: Option<Duration>,
}

/// Ask again about a pending approval after this many seconds, whatever the manager says (its
/// 30 s would make a test of the approval flow wait that long after every approval).
pub const APPROVAL_RETRY_ENV: &str = "PATCHDECK_AGENT_APPROVAL_RETRY_SECS";

/// The [`APPROVAL_RETRY_ENV`] value, if set and valid.
pub fn approval_retry_from_env() -> Option<Duration> {
    super::secs_from_env(APPROVAL_RETRY_ENV)
}

/// What [`enroll`] reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollProgress {
    /// The CA certificate matched the fingerprint.
    CaTrusted { url: String, fingerprint: String },
    /// The manager holds the enrollment for an administrator's approval.
    Pending { host_id: i64, retry_after: Duration, attempt: u32 },
    /// A request failed while waiting for approval; it is tried again.
    Retrying { error: String, retry_after: Duration },
}

/// How [`enroll`] ended.
#[derive(Debug)]
pub enum EnrollOutcome {
    /// Enrolled now.
    Enrolled(Identity),
    /// Enrolled before, and no `--force`: nothing was sent.
    AlreadyEnrolled(Identity),
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(
        "refusing to enroll without a way to trust the manager: pass --ca-fingerprint HEX (the SHA-256 \
         of the manager's CA certificate, shown with the registration token) or --ca-cert FILE"
    )]
    NoTrust,
    #[error("no manager URL: pass --server https://HOST:8443 (or set PATCHDECK_SERVER or pull.server)")]
    NoServer,
    #[error("no registration token: pass --token TOKEN (or set PATCHDECK_ENROLL_TOKEN or pull.enroll_token)")]
    NoToken,
    #[error("invalid --ca-fingerprint: {0}")]
    BadFingerprint(String),
    #[error("invalid manager URL: {0}")]
    BadServer(String),
    #[error(
        "the CA certificate from {url} has SHA-256 fingerprint {actual}, not {expected}: refusing to trust it \
         (check the fingerprint, or whether something intercepts the connection)"
    )]
    FingerprintMismatch { url: String, expected: String, actual: String },
    #[error("CA certificate file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the manager's enrollment answer is unusable: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("making a key: {0}")]
    Key(String),
    #[error("enrollment stopped: the agent is shutting down")]
    Stopped,
}

impl EnrollError {
    /// A problem of the local configuration: trying again cannot help.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            EnrollError::NoTrust
                | EnrollError::NoServer
                | EnrollError::NoToken
                | EnrollError::BadFingerprint(_)
                | EnrollError::BadServer(_)
                | EnrollError::CaFile { .. }
        )
    }
}

/// Reads a fingerprint as people write it: colons, spaces and upper case are accepted.
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    // `openssl x509 -noout -fingerprint -sha256` prints `sha256 Fingerprint=AB:CD:...`.
    let value = text.rsplit('=').next().unwrap_or(text);
    let hex: String =
        value.chars().filter(|c| *c != ':' && !c.is_whitespace()).map(|c| c.to_ascii_lowercase()).collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a SHA-256 fingerprint (64 hexadecimal digits, colons allowed), e.g. as printed by \
             `openssl x509 -noout -fingerprint -sha256`"
        ));
    }
    Ok(hex)
}

/// The PEM blocks of the certificates in `pem`, each as its own text.
fn certificate_blocks(pem: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else { break };
        let end = start + len + END.len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    blocks
}

/// `a` plus the certificates of `b` that `a` does not have.
pub(crate) fn merge_certificates(a: &str, b: &str) -> String {
    let mut out: Vec<String> = certificate_blocks(a);
    let mut known: Vec<String> = out.iter().filter_map(|c| patchdeck_crypto::ca::fingerprint(c).ok()).collect();
    for block in certificate_blocks(b) {
        if let Ok(fp) = patchdeck_crypto::ca::fingerprint(&block) {
            if !known.contains(&fp) {
                known.push(fp);
                out.push(block);
            }
        }
    }
    out.concat()
}

/// Downloads the CA certificate without verifying the server, and returns the certificate whose
/// fingerprint is `expected`.
pub async fn fetch_ca(server: &str, expected: &str, timeout: Duration) -> Result<String, EnrollError> {
    let url = format!("{server}/api/v1/ca/certificate");
    let http = client::http_client(client::insecure_tls()?)?;
    let response = http.request(Method::GET, &url).timeout(timeout).send().await.map_err(|e| {
        if e.is_timeout() {
            ClientError::Timeout { url: url.clone(), timeout }
        } else {
            ClientError::Connect { url: url.clone(), reason: client::chain(&e) }
        }
    })?;
    let status = response.status();
    let text =
        response.text().await.map_err(|e| ClientError::Connect { url: url.clone(), reason: client::chain(&e) })?;
    if !status.is_success() {
        let body: String = text.chars().take(200).collect();
        return Err(ClientError::Http { url, status: status.as_u16(), body, retry_after: None }.into());
    }
    let blocks = certificate_blocks(&text);
    if blocks.is_empty() {
        return Err(ClientError::Decode { url, reason: "no PEM certificate in the answer".to_owned() }.into());
    }
    let mut seen = Vec::new();
    for block in blocks {
        match patchdeck_crypto::ca::fingerprint(&block) {
            Ok(fp) if fp == expected => return Ok(block),
            Ok(fp) => seen.push(fp),
            Err(err) => return Err(ClientError::Decode { url, reason: err.to_string() }.into()),
        }
    }
    Err(EnrollError::FingerprintMismatch { url, expected: expected.to_owned(), actual: seen.join(", ") })
}

/// Reads the CA file given with `--ca-cert`.
fn read_ca_file(path: &Path) -> Result<String, EnrollError> {
    let ca_file = |reason: String| EnrollError::CaFile { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| ca_file(e.to_string()))?;
    client::parse_certificates(&text).map_err(ca_file)?;
    let blocks = certificate_blocks(&text);
    if blocks.is_empty() {
        return Err(ca_file("no PEM certificate found".to_owned()));
    }
    Ok(blocks.concat())
}

/// The key and CSR of this enrollment: the pending ones of an interrupted enrollment (unless
/// `force`), or new ones, stored before they are used.
fn enrollment_key(paths: &PullPaths, hostname: &str, force: bool) -> Result<(String, Zeroizing<String>), EnrollError> {
    let key_path = paths.enroll_key();
    let csr_path = paths.dir().join("enroll.csr");
    if !force {
        if let (Ok(key), Ok(csr)) = (std::fs::read_to_string(&key_path), std::fs::read_to_string(&csr_path)) {
            tracing::info!("resuming the enrollment with the key made earlier");
            return Ok((csr, Zeroizing::new(key)));
        }
    }
    let (csr, key) = patchdeck_crypto::ca::make_csr(&identity::csr_common_name(hostname))
        .map_err(|e| EnrollError::Key(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| EnrollError::Identity(IdentityError::Io { path, source })
    };
    fs::write_atomic(&key_path, key.expose().as_bytes(), fs::SECRET_MODE).map_err(io(&key_path))?;
    fs::write_atomic(&csr_path, csr.as_bytes(), fs::PUBLIC_MODE).map_err(io(&csr_path))?;
    Ok((csr, Zeroizing::new(key.expose().to_owned())))
}

/// Enrolls (see the module docs). `progress` hears about waiting; `shutdown` (when given)
/// interrupts the wait for approval.
pub async fn enroll(
    options: &EnrollOptions,
    progress: &mut (dyn FnMut(EnrollProgress) + Send),
    mut shutdown: Option<watch::Receiver<bool>>,
) -> Result<EnrollOutcome, EnrollError> {
    let paths = PullPaths::new(&options.state_dir);
    if !options.force {
        if let Some(identity) = Identity::load(&paths)? {
            return Ok(EnrollOutcome::AlreadyEnrolled(identity));
        }
    }
    let server = client::normalize_server(&options.server).map_err(EnrollError::BadServer)?;
    if options.token.expose().trim().is_empty() {
        return Err(EnrollError::NoToken);
    }
    let machine_id = identity::read_machine_id()?;
    let facts = identity::host_facts();
    let os = patchdeck_pkg::detect::os_info(&options.os_root);

    let trusted = match &options.trust {
        Trust::Fingerprint(expected) => {
            let pem = fetch_ca(&server, expected, options.request_timeout).await?;
            progress(EnrollProgress::CaTrusted {
                url: format!("{server}/api/v1/ca/certificate"),
                fingerprint: expected.clone(),
            });
            pem
        }
        Trust::CaFile(path) => read_ca_file(path)?,
    };
    let http = client::http_client(client::pinned_tls(&trusted, None)?)?;

    fs::create_private_dir(paths.dir()).map_err(|source| IdentityError::Io { path: paths.dir().to_owned(), source })?;
    let (csr_pem, key_pem) = enrollment_key(&paths, &facts.hostname, options.force)?;
    let request = EnrollRequest {
        protocol_version: PROTOCOL_VERSION,
        token: options.token.expose().to_owned(),
        csr_pem,
        machine_id: machine_id.clone(),
        hostname: facts.hostname.clone(),
        fqdn: facts.fqdn.clone(),
        addresses: facts.addresses.clone(),
        os,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        force: options.force,
    };
    let url = format!("{server}/agent/v1/enroll");
    let body = client::json_body(&request, &url)?;
    let mut attempt = 0u32;
    let mut waiting = false;
    let mut retry = super::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    let mut rng = super::backoff::SplitMix64::from_entropy();
    loop {
        attempt += 1;
        let answer = client::send::<EnrollResponse>(
            &http,
            Method::POST,
            &url,
            None,
            Some(body.clone()),
            options.request_timeout,
        )
        .await;
        let pause = match answer {
            Ok(Some(EnrollResponse::Enrolled(enrollment))) => {
                let identity = finish(&paths, &server, &machine_id, &trusted, key_pem, enrollment)?;
                return Ok(EnrollOutcome::Enrolled(identity));
            }
            Ok(Some(EnrollResponse::PendingApproval { host_id, retry_after_secs })) => {
                waiting = true;
                retry.reset();
                let asked = options.approval_retry.unwrap_or(Duration::from_secs(retry_after_secs));
                let retry_after = asked.clamp(Duration::from_secs(1), Duration::from_secs(3600));
                progress(EnrollProgress::Pending { host_id, retry_after, attempt });
                retry_after
            }
            Ok(None) => return Err(EnrollError::BadAnswer("an empty answer".to_owned())),
            // While waiting for approval, a manager that is briefly away is waited for.
            Err(err) if waiting && err.code().is_none() => {
                let retry_after = retry.next_delay(&mut rng).max(Duration::from_secs(1));
                progress(EnrollProgress::Retrying { error: err.to_string(), retry_after });
                retry_after
            }
            Err(err) => return Err(err.into()),
        };
        match &mut shutdown {
            Some(stop) => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return Err(EnrollError::Stopped),
                }
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// Checks the enrollment and stores it.
fn finish(
    paths: &PullPaths,
    server: &str,
    machine_id: &str,
    trusted: &str,
    key_pem: Zeroizing<String>,
    enrollment: Enrollment,
) -> Result<Identity, EnrollError> {
    let bad = EnrollError::BadAnswer;
    let command_key = identity::parse_command_key(&enrollment.command_key, &enrollment.command_key_fingerprint)
        .map_err(|e| bad(format!("command key: {e}")))?;
    let (not_before, not_after) =
        identity::validity_of(&enrollment.certificate_pem).map_err(|e| bad(format!("certificate: {e}")))?;
    // The manager's CA (which issued the client certificate) joins the trusted roots: a manager
    // with a certificate from another CA was reached through `trusted`, which stays.
    let ca_pem = merge_certificates(trusted, &enrollment.ca_pem);
    // The key must fit the certificate, or nothing would work later.
    client::pinned_tls(&ca_pem, Some((&enrollment.certificate_pem, &key_pem)))
        .map_err(|e| bad(format!("certificate: {e}")))?;
    let identity = Identity {
        server: server.to_owned(),
        host_id: enrollment.host_id,
        machine_id: machine_id.to_owned(),
        command_key,
        command_key_fingerprint: enrollment.command_key_fingerprint,
        enrolled_at: Timestamp::now(),
        cert_pem: enrollment.certificate_pem,
        key_pem,
        ca_pem,
        not_before,
        not_after,
    };
    identity.save(paths)?;
    for leftover in [paths.enroll_key(), paths.dir().join("enroll.csr")] {
        if let Err(err) = fs::remove_durable(&leftover) {
            tracing::warn!(path = %leftover.display(), %err, "could not remove the finished enrollment's file");
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_accepted_as_people_write_them() {
        let hex = "3f1c".repeat(16);
        assert_eq!(parse_fingerprint(&hex).unwrap(), hex);
        let colons = hex
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), hex);
        assert_eq!(parse_fingerprint(&format!("sha256 Fingerprint={colons}\n")).unwrap(), hex, "openssl's output");
        assert!(parse_fingerprint("3f1c").unwrap_err().contains("64 hexadecimal digits"));
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn certificate_bundles_are_split_and_merged_without_duplicates() {
        let now = Timestamp::now();
        let validity = jiff::SignedDuration::from_hours(24);
        let a = patchdeck_crypto::ca::CertificateAuthority::generate("A", now, validity).unwrap();
        let b = patchdeck_crypto::ca::CertificateAuthority::generate("B", now, validity).unwrap();
        let bundle = format!("# a comment\n{}{}", a.cert_pem(), b.cert_pem());
        assert_eq!(certificate_blocks(&bundle).len(), 2);
        let merged = merge_certificates(a.cert_pem(), &bundle);
        assert_eq!(certificate_blocks(&merged).len(), 2);
        assert!(merged.starts_with(a.cert_pem().trim_start()));
        assert_eq!(certificate_blocks(&merge_certificates(a.cert_pem(), a.cert_pem())).len(), 1);
    }
}
