//! WebAuthn credentials (passkeys and security keys) registered by users.

use jiff::Timestamp;
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::sql::{ms, RowExt};
use crate::types::{UserId, WebauthnCredentialId};
use crate::Store;

/// A registered authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebauthnCredential {
    /// Row id.
    pub id: WebauthnCredentialId,
    /// The owner.
    pub user_id: UserId,
    /// The authenticator's credential id (raw bytes), unique across all users.
    pub credential_id: Vec<u8>,
    /// The COSE public key.
    pub public_key: Vec<u8>,
    /// The highest signature counter seen.
    pub sign_count: u32,
    /// Name the user gave it.
    pub name: String,
    /// Registration time.
    pub created_at: Timestamp,
    /// Last successful assertion.
    pub last_used_at: Option<Timestamp>,
}

/// A credential to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebauthnCredential {
    /// The owner.
    pub user_id: UserId,
    /// The authenticator's credential id.
    pub credential_id: Vec<u8>,
    /// The COSE public key.
    pub public_key: Vec<u8>,
    /// Signature counter from the attestation.
    pub sign_count: u32,
    /// Name the user gave it.
    pub name: String,
}

const COLUMNS: &str = "id, user_id, credential_id, public_key, sign_count, name, created_at, last_used_at";

fn from_row(row: &AnyRow) -> Result<WebauthnCredential> {
    let sign_count = row.int("sign_count")?;
    Ok(WebauthnCredential {
        id: WebauthnCredentialId(row.int("id")?),
        user_id: UserId(row.int("user_id")?),
        credential_id: row.blob("credential_id")?,
        public_key: row.blob("public_key")?,
        sign_count: u32::try_from(sign_count)
            .map_err(|_| Error::Corrupt(format!("WebAuthn sign count {sign_count} out of range")))?,
        name: row.text("name")?,
        created_at: row.ts("created_at")?,
        last_used_at: row.opt_ts("last_used_at")?,
    })
}

impl Store {
    /// Registers a credential. [`Error::Conflict`] when the credential id is already registered
    /// (to anyone); [`Error::MissingReference`] when the user does not exist.
    pub async fn add_webauthn_credential(
        &self,
        new: &NewWebauthnCredential,
        now: Timestamp,
    ) -> Result<WebauthnCredential> {
        let row = sqlx::query(&format!(
            "INSERT INTO webauthn_credentials (user_id, credential_id, public_key, sign_count, name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(new.user_id.0)
        .bind(new.credential_id.as_slice())
        .bind(new.public_key.as_slice())
        .bind(i64::from(new.sign_count))
        .bind(new.name.as_str())
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(&[("credential_id", "WebAuthn credential")], "user")?;
        from_row(&row)
    }

    /// The credentials of a user, oldest first.
    pub async fn list_webauthn_credentials(&self, user: UserId) -> Result<Vec<WebauthnCredential>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM webauthn_credentials WHERE user_id = $1 ORDER BY id"))
            .bind(user.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The credential with this authenticator credential id (the login lookup).
    pub async fn get_webauthn_credential(&self, credential_id: &[u8]) -> Result<Option<WebauthnCredential>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM webauthn_credentials WHERE credential_id = $1"))
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records a successful assertion, atomically: stores `new_count` and the time only if the
    /// counter went up, or if both counters are 0 (authenticators without a counter). `false`
    /// means the counter did not advance — a possible cloned authenticator — and nothing changed.
    pub async fn update_webauthn_sign_count(
        &self,
        credential_id: &[u8],
        new_count: u32,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webauthn_credentials SET sign_count = $2, last_used_at = $3 \
             WHERE credential_id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))",
        )
        .bind(credential_id)
        .bind(i64::from(new_count))
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a credential of this user. [`Error::NotFound`] when it does not exist or belongs
    /// to someone else.
    pub async fn delete_webauthn_credential(&self, user: UserId, id: WebauthnCredentialId) -> Result<()> {
        let done = sqlx::query("DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("WebAuthn credential"));
        }
        Ok(())
    }
}
