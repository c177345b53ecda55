//! The simulated fleet's identities: machine IDs, keys and certificates, kept in the state
//! directory so a second run against the same manager reuses them and takes no new seats.
//!
//! ```text
//! <state-dir>/fleet.json              the manager they belong to: server URL, CA fingerprint
//! <state-dir>/agents/sim-0001.json    one agent: index, hostname, machine ID, host id, key, certificate (0600)
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use patchdeck_proto::agent::{AgentErrorBody, EnrollRequest, EnrollResponse, PROTOCOL_VERSION};
use serde::{Deserialize, Serialize};

use crate::synth;

/// One enrolled simulated agent.
#[derive(Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    /// 1-based position in the fleet.
    pub index: usize,
    pub hostname: String,
    pub machine_id: String,
    pub host_id: i64,
    /// PKCS#8 PEM of the agent's P-256 key.
    pub key_pem: String,
    pub cert_pem: String,
}

impl std::fmt::Debug for AgentRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRecord")
            .field("index", &self.index)
            .field("hostname", &self.hostname)
            .field("machine_id", &self.machine_id)
            .field("host_id", &self.host_id)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl AgentRecord {
    /// Certificate and key in one PEM, as `reqwest::Identity::from_pem` reads them.
    pub fn identity_pem(&self) -> Vec<u8> {
        let mut pem = self.cert_pem.clone().into_bytes();
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(self.key_pem.as_bytes());
        pem
    }
}

/// `sim-0001`, `sim-0002`, …, `sim-10000`.
pub fn hostname(index: usize) -> String {
    format!("sim-{index:04}")
}

/// A random machine ID in systemd's format: 32 lower-case hex digits, never all zeros (the
/// manager refuses that one).
pub fn machine_id() -> anyhow::Result<String> {
    loop {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        if bytes.iter().any(|&b| b != 0) {
            return Ok(bytes.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
}

/// Which manager a state directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetOwner {
    pub server: String,
    /// SHA-256 of the manager's CA certificate (the `--ca-cert` file's first certificate).
    pub ca_fingerprint: String,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating) `root` for the manager `owner`; refuses a directory made for a manager
    /// with another CA, which would not accept its certificates. (The address may change.)
    pub fn open(root: &Path, owner: &FleetOwner) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join("agents")).with_context(|| format!("creating {}", root.display()))?;
        let fleet = root.join("fleet.json");
        match std::fs::read(&fleet) {
            Ok(bytes) => {
                let existing: FleetOwner =
                    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", fleet.display()))?;
                if existing.ca_fingerprint != owner.ca_fingerprint {
                    bail!(
                        "{} belongs to the manager at {} (CA {}), not to one with CA {}; use another --state-dir",
                        root.display(),
                        existing.server,
                        existing.ca_fingerprint,
                        owner.ca_fingerprint
                    );
                }
                if existing.server != owner.server {
                    write_private(&fleet, &serde_json::to_vec_pretty(owner)?)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_private(&fleet, &serde_json::to_vec_pretty(owner)?)?;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", fleet.display())),
        }
        Ok(StateDir { root: root.to_owned() })
    }

    fn agent_path(&self, index: usize) -> PathBuf {
        self.root.join("agents").join(format!("{}.json", hostname(index)))
    }

    /// Agent `index`, if it was enrolled in an earlier run.
    pub fn load(&self, index: usize) -> anyhow::Result<Option<AgentRecord>> {
        let path = self.agent_path(index);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let record: AgentRecord =
                    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
                if record.index != index {
                    bail!("{} holds agent {}, expected {index}", path.display(), record.index);
                }
                Ok(Some(record))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, record: &AgentRecord) -> anyhow::Result<()> {
        write_private(&self.agent_path(record.index), &serde_json::to_vec(record)?)
    }
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it), mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(())
}

/// What enrolling one agent cost.
#[derive(Debug, Default)]
pub struct EnrollStats {
    /// 429 answers (enrollment is rate-limited per source address) that were waited out.
    pub rate_limited: u64,
}

/// Enrolls agent `index` with `token`: a new P-256 key and CSR, a random machine ID. Waits out
/// `429 Too Many Requests` (Retry-After) up to `patience`.
pub async fn enroll(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    index: usize,
    patience: Duration,
    stats: &mut EnrollStats,
) -> anyhow::Result<AgentRecord> {
    let hostname = hostname(index);
    let (csr_pem, key) = patchdeck_crypto::ca::make_csr(&hostname)?;
    let machine_id = machine_id()?;
    let request = EnrollRequest {
        protocol_version: PROTOCOL_VERSION,
        token: token.to_owned(),
        csr_pem,
        machine_id: machine_id.clone(),
        hostname: hostname.clone(),
        fqdn: Some(format!("{hostname}.sim.example.net")),
        addresses: vec![format!("10.{}.{}.{}", (index >> 16) & 0xff, (index >> 8) & 0xff, index & 0xff)],
        os: synth::os(),
        agent_version: synth::AGENT_VERSION.into(),
        force: false,
    };
    let body = serde_json::to_vec(&request)?;
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let response = client
            .post(format!("{base}/agent/v1/enroll"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("enrolling {hostname}"))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.with_context(|| format!("enrolling {hostname}: reading the answer"))?;
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS && tokio::time::Instant::now() < deadline {
            stats.rate_limited += 1;
            tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).max(1))).await;
            continue;
        }
        if !status.is_success() {
            bail!("enrolling {hostname}: {status} {}", error_code(&bytes));
        }
        return match serde_json::from_slice::<EnrollResponse>(&bytes)
            .with_context(|| format!("enrolling {hostname}: the answer is not an EnrollResponse"))?
        {
            EnrollResponse::Enrolled(enrollment) => Ok(AgentRecord {
                index,
                hostname,
                machine_id,
                host_id: enrollment.host_id,
                key_pem: key.expose().to_owned(),
                cert_pem: enrollment.certificate_pem,
            }),
            EnrollResponse::PendingApproval { host_id, .. } => bail!(
                "{hostname} (host {host_id}) waits for approval: turn off \"enrollment requires approval\" \
                 for the benchmark"
            ),
        };
    }
}

/// `Retry-After` in seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

/// `code: message` of an agent error body, or the start of the text.
pub fn error_code(body: &[u8]) -> String {
    match serde_json::from_slice::<AgentErrorBody>(body) {
        Ok(e) => format!("{}: {}", e.error.code, e.error.message),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn machine_ids_are_32_lowercase_hex_and_distinct() {
        let ids: HashSet<String> = (0..1000).map(|_| machine_id().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
            assert!(id.bytes().any(|b| b != b'0'));
        }
    }

    #[test]
    fn hostnames_are_padded_and_valid_common_names() {
        assert_eq!(hostname(1), "sim-0001");
        assert_eq!(hostname(9999), "sim-9999");
        assert_eq!(hostname(10_000), "sim-10000");
        // The CSR's common name is the hostname.
        assert!(patchdeck_crypto::ca::make_csr(&hostname(10_000)).is_ok());
    }

    #[test]
    fn the_state_dir_round_trips_agents_and_refuses_another_manager() {
        let root = std::env::temp_dir().join(format!("patchdeck-sim-test-{}", machine_id().unwrap()));
        let owner = FleetOwner { server: "https://localhost:8443".into(), ca_fingerprint: "ab".repeat(32) };
        let dir = StateDir::open(&root, &owner).unwrap();
        assert!(dir.load(3).unwrap().is_none());
        let record = AgentRecord {
            index: 3,
            hostname: hostname(3),
            machine_id: machine_id().unwrap(),
            host_id: 42,
            key_pem: "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\ny\n-----END CERTIFICATE-----".into(),
        };
        dir.save(&record).unwrap();
        let back = dir.load(3).unwrap().unwrap();
        assert_eq!((back.host_id, &back.machine_id, &back.key_pem), (42, &record.machine_id, &record.key_pem));
        let mode = std::fs::metadata(root.join("agents/sim-0003.json")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        assert!(!format!("{back:?}").contains("PRIVATE KEY"), "Debug hides the key");
        let pem = String::from_utf8(back.identity_pem()).unwrap();
        assert!(pem.contains("END CERTIFICATE-----\n-----BEGIN PRIVATE KEY"), "{pem}");
        // Reopening for the same CA works, at another address too; another CA is refused.
        assert!(StateDir::open(&root, &owner).is_ok());
        let moved = FleetOwner { server: "https://localhost:9443".into(), ..owner.clone() };
        assert!(StateDir::open(&root, &moved).is_ok());
        let other = FleetOwner { ca_fingerprint: "cd".repeat(32), ..moved };
        let err = StateDir::open(&root, &other).unwrap_err().to_string();
        assert!(err.contains("belongs to the manager at https://localhost:9443"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
