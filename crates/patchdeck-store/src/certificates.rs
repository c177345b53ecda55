//! Certificates issued by the internal CA, and their revocation (the source of the CRL).

use jiff::Timestamp;
use serde::Serialize;

use crate::error::{Error, Result, ResultExt};
use crate::hosts::{host_from_row, HOST_COLUMNS};
use crate::sql::{aliased, ms, prefixed, Prefixed, RowExt, SqlBuilder};
use crate::types::{text_enum, CertificateId, HostId, Page, Paging};
use crate::{Host, Store};

text_enum! {
    /// What a certificate is for.
    CertificateKind ("certificate kind") {
        /// The manager's TLS server certificate.
        Server = "server",
        /// An agent's client certificate (pull mode).
        Client = "client",
        /// The manager's client certificate for push hosts.
        PushClient = "push_client",
    }
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certificate {
    /// Row id.
    pub id: CertificateId,
    /// Serial number, lower-case hex without separators.
    pub serial: String,
    /// What it is for.
    pub kind: CertificateKind,
    /// Subject common name.
    pub common_name: String,
    /// The host it was issued to (unset when the host is deleted).
    pub host_id: Option<HostId>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// The certificate in PEM.
    pub pem: String,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// Revocation reason (e.g. `key_compromise`, `superseded`).
    pub revocation_reason: Option<String>,
    /// When it was stored.
    pub created_at: Timestamp,
}

/// A certificate to store after issuing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// Serial number in hex (any case; stored lower case).
    pub serial: String,
    /// What it is for.
    pub kind: CertificateKind,
    /// Subject common name.
    pub common_name: String,
    /// The host it was issued to.
    pub host_id: Option<HostId>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// The certificate in PEM.
    pub pem: String,
}

/// Which certificates [`Store::list_certificates`] returns (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFilter {
    /// Only this kind.
    pub kind: Option<CertificateKind>,
    /// Only certificates of this host.
    pub host_id: Option<HostId>,
    /// `Some(true)`: only revoked; `Some(false)`: only unrevoked.
    pub revoked: Option<bool>,
    /// Page.
    pub paging: Paging,
}

/// An entry of the CRL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevokedCertificate {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// Revocation time.
    pub revoked_at: Timestamp,
    /// Revocation reason.
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, serial, kind, common_name, host_id, not_before_at, not_after_at, pem, revoked_at, \
    revocation_reason, created_at";

/// Prefix of the certificate's columns in [`Store::agent_identity`]'s join.
const CERT_PREFIX: &str = "cert_";

/// Longest serial accepted: RFC 5280 allows 20 octets.
const MAX_SERIAL_HEX: usize = 40;

/// Reads a certificate from its own table's row, or through [`Prefixed`] from a join.
fn from_row(row: &(impl RowExt + ?Sized)) -> Result<Certificate> {
    Ok(Certificate {
        id: CertificateId(row.int("id")?),
        serial: row.text("serial")?,
        kind: row.parse("kind")?,
        common_name: row.text("common_name")?,
        host_id: row.opt_int("host_id")?.map(HostId),
        not_before: row.ts("not_before_at")?,
        not_after: row.ts("not_after_at")?,
        pem: row.text("pem")?,
        revoked_at: row.opt_ts("revoked_at")?,
        revocation_reason: row.opt_text("revocation_reason")?,
        created_at: row.ts("created_at")?,
    })
}

/// Lower-case hex, 1 to 40 digits.
fn normalize_serial(serial: &str) -> Result<String> {
    let serial = serial.trim().to_ascii_lowercase();
    if serial.is_empty() || serial.len() > MAX_SERIAL_HEX || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!("certificate serial must be 1 to {MAX_SERIAL_HEX} hex digits")));
    }
    Ok(serial)
}

impl Store {
    /// Stores an issued certificate. [`Error::Conflict`] when the serial exists,
    /// [`Error::MissingReference`] when the host does not.
    pub async fn insert_certificate(&self, new: &NewCertificate, now: Timestamp) -> Result<Certificate> {
        if new.not_after <= new.not_before {
            return Err(Error::Invalid("certificate not_after is not after not_before".into()));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO certificates (serial, kind, common_name, host_id, not_before_at, not_after_at, pem, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(normalize_serial(&new.serial)?)
        .bind(new.kind.as_str())
        .bind(new.common_name.as_str())
        .bind(new.host_id.map(|id| id.0))
        .bind(ms(new.not_before))
        .bind(ms(new.not_after))
        .bind(new.pem.as_str())
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(&[("serial", "certificate serial")], "host")?;
        from_row(&row)
    }

    /// The certificate with this serial (hex, any case).
    pub async fn get_certificate_by_serial(&self, serial: &str) -> Result<Option<Certificate>> {
        let Ok(serial) = normalize_serial(serial) else { return Ok(None) };
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM certificates WHERE serial = $1"))
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The certificate with this serial and the host it was issued to, in one query: what the
    /// manager needs to authorize every agent request, so one round trip instead of two.
    /// `Ok(None)` for an unknown serial; the host is `None` when the certificate has none or its
    /// host was deleted. Kind and revocation are the caller's to check.
    pub async fn agent_identity(&self, serial: &str) -> Result<Option<(Certificate, Option<Host>)>> {
        let Ok(serial) = normalize_serial(serial) else { return Ok(None) };
        // The host's columns keep their names (`host_from_row` reads them); the certificate's,
        // which clash on `id` and `created_at`, are read back under a prefix.
        let row = sqlx::query(&format!(
            "SELECT {}, {} FROM certificates c LEFT JOIN hosts h ON h.id = c.host_id WHERE c.serial = $1",
            aliased("c", CERT_PREFIX, COLUMNS),
            prefixed("h", HOST_COLUMNS)
        ))
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let certificate = from_row(&Prefixed(&row, CERT_PREFIX))?;
        // A LEFT JOIN without a match leaves every host column NULL, the primary key included.
        let host = match row.opt_int("id")? {
            Some(_) => Some(host_from_row(&row)?),
            None => None,
        };
        Ok(Some((certificate, host)))
    }

    /// One page of certificates matching `filter`, newest first.
    pub async fn list_certificates(&self, filter: &CertificateFilter) -> Result<Page<Certificate>> {
        let mut sql = SqlBuilder::default();
        if let Some(kind) = filter.kind {
            let kind = sql.arg(kind.as_str());
            sql.condition(format!("kind = {kind}"));
        }
        if let Some(host) = filter.host_id {
            let host = sql.arg(host.0);
            sql.condition(format!("host_id = {host}"));
        }
        match filter.revoked {
            Some(true) => sql.condition("revoked_at IS NOT NULL"),
            Some(false) => sql.condition("revoked_at IS NULL"),
            None => {}
        }
        self.fetch_page(sql, COLUMNS, "certificates", "id DESC", filter.paging, from_row).await
    }

    /// Revokes a certificate. [`Error::NotFound`] for an unknown serial, [`Error::Conflict`]
    /// when it was already revoked (the first revocation stays).
    pub async fn revoke_certificate(&self, serial: &str, reason: &str, now: Timestamp) -> Result<Certificate> {
        let Ok(serial) = normalize_serial(serial) else { return Err(Error::NotFound("certificate")) };
        let row = sqlx::query(&format!(
            "UPDATE certificates SET revoked_at = $2, revocation_reason = $3 \
             WHERE serial = $1 AND revoked_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(serial.as_str())
        .bind(ms(now))
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => from_row(&row),
            None if self.get_certificate_by_serial(&serial).await?.is_some() => {
                Err(Error::Conflict("certificate already revoked".into()))
            }
            None => Err(Error::NotFound("certificate")),
        }
    }

    /// Every revoked certificate, oldest revocation first: the entries of the CRL.
    pub async fn list_revoked_certificates(&self) -> Result<Vec<RevokedCertificate>> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL \
             ORDER BY revoked_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RevokedCertificate {
                    serial: row.text("serial")?,
                    revoked_at: row.ts("revoked_at")?,
                    reason: row.opt_text("revocation_reason")?,
                })
            })
            .collect()
    }
}
