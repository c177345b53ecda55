//! Bearer secrets the server looks up by hash: agent registration tokens (with seats) and
//! personal API tokens. Only SHA-256 hashes are stored (see `patchdeck_crypto::token`); no
//! function returns a hash.

use jiff::Timestamp;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use crate::error::{Error, Result, ResultExt};
use crate::sql::{ms, prefixed, RowExt, SqlBuilder};
use crate::types::{ApiTokenId, Page, Paging, RegistrationTokenId, UserId};
use crate::users::{user_from_row, User, USER_COLUMNS};
use crate::Store;

/// SHA-256 of an opaque token (`patchdeck_crypto::token::TokenHash::0`).
pub type TokenHashBytes = [u8; 32];

/// An agent registration token: `seats_total` enrollments until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationToken {
    /// Its id.
    pub id: RegistrationTokenId,
    /// What it is for.
    pub label: String,
    /// Enrollments allowed.
    pub seats_total: u32,
    /// Enrollments done.
    pub seats_used: u32,
    /// No enrollment at or after this time.
    pub expires_at: Timestamp,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// The admin who made it (unset when that user was deleted).
    pub created_by: Option<UserId>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A registration token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistrationToken {
    /// SHA-256 of the secret.
    pub token_hash: TokenHashBytes,
    /// What it is for.
    pub label: String,
    /// Enrollments allowed (at least 1).
    pub seats_total: u32,
    /// Expiry.
    pub expires_at: Timestamp,
    /// The creating user.
    pub created_by: Option<UserId>,
}

/// Why [`Store::take_seat`] refused.
#[derive(Debug, thiserror::Error)]
pub enum TakeSeatError {
    /// No token has this hash.
    #[error("registration token not found")]
    NotFound,
    /// The token has expired.
    #[error("registration token expired")]
    Expired,
    /// The token was revoked.
    #[error("registration token revoked")]
    Revoked,
    /// Every seat is taken.
    #[error("registration token has no seats left")]
    NoSeatsLeft,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for TakeSeatError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// A personal API token of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Its id.
    pub id: ApiTokenId,
    /// The owner; the token acts with the owner's current role and scope.
    pub user_id: UserId,
    /// What it is for.
    pub label: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Not accepted at or after this time.
    pub expires_at: Timestamp,
    /// Last use, updated at most once a minute.
    pub last_used_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// An API token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    /// The owner.
    pub user_id: UserId,
    /// SHA-256 of the secret.
    pub token_hash: TokenHashBytes,
    /// What it is for.
    pub label: String,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// [`Store::touch_api_token`] writes at most this often per token, so that a busy script does
/// not turn every request into a write.
pub const API_TOKEN_TOUCH_INTERVAL_MS: i64 = 60_000;

const REG_COLUMNS: &str = "id, label, seats_total, seats_used, expires_at, revoked_at, created_by, created_at";
const API_COLUMNS: &str = "id, user_id, label, created_at, expires_at, last_used_at, revoked_at";

fn registration_from_row(row: &AnyRow) -> Result<RegistrationToken> {
    Ok(RegistrationToken {
        id: RegistrationTokenId(row.int("id")?),
        label: row.text("label")?,
        seats_total: row.count("seats_total")?,
        seats_used: row.count("seats_used")?,
        expires_at: row.ts("expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
        created_by: row.opt_int("created_by")?.map(UserId),
        created_at: row.ts("created_at")?,
    })
}

fn api_from_row(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: ApiTokenId(row.int("id")?),
        user_id: UserId(row.int("user_id")?),
        label: row.text("label")?,
        created_at: row.ts("created_at")?,
        expires_at: row.ts("expires_at")?,
        last_used_at: row.opt_ts("last_used_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
    })
}

/// [`Store::take_seat`] on one connection, so that a transaction (enrollment) can take the seat
/// together with its other writes: one conditional `UPDATE` decides, and only a refusal reads
/// the token again to say why.
pub(crate) async fn take_seat_in(
    conn: &mut AnyConnection,
    token_hash: &TokenHashBytes,
    now: Timestamp,
) -> std::result::Result<RegistrationToken, TakeSeatError> {
    let row = sqlx::query(&format!(
        "UPDATE registration_tokens SET seats_used = seats_used + 1 \
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND seats_used < seats_total \
         RETURNING {REG_COLUMNS}"
    ))
    .bind(&token_hash[..])
    .bind(ms(now))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Ok(registration_from_row(&row)?);
    }
    let row = sqlx::query(&format!("SELECT {REG_COLUMNS} FROM registration_tokens WHERE token_hash = $1"))
        .bind(&token_hash[..])
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Err(TakeSeatError::NotFound) };
    let token = registration_from_row(&row)?;
    Err(if token.revoked_at.is_some() {
        TakeSeatError::Revoked
    } else if token.expires_at <= now {
        TakeSeatError::Expired
    } else {
        TakeSeatError::NoSeatsLeft
    })
}

impl Store {
    /// Stores a registration token.
    pub async fn create_registration_token(
        &self,
        new: &NewRegistrationToken,
        now: Timestamp,
    ) -> Result<RegistrationToken> {
        if new.seats_total == 0 {
            return Err(Error::Invalid("a registration token needs at least one seat".into()));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO registration_tokens (token_hash, label, seats_total, expires_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {REG_COLUMNS}"
        ))
        .bind(&new.token_hash[..])
        .bind(new.label.as_str())
        .bind(i64::from(new.seats_total))
        .bind(ms(new.expires_at))
        .bind(new.created_by.map(|id| id.0))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(&[("token_hash", "registration token")], "user")?;
        registration_from_row(&row)
    }

    /// Registration tokens, newest first.
    pub async fn list_registration_tokens(&self, paging: Paging) -> Result<Page<RegistrationToken>> {
        self.fetch_page(SqlBuilder::default(), REG_COLUMNS, "registration_tokens", "id DESC", paging, |row| {
            registration_from_row(row)
        })
        .await
    }

    /// The registration token with this id.
    pub async fn get_registration_token(&self, id: RegistrationTokenId) -> Result<Option<RegistrationToken>> {
        let row = sqlx::query(&format!("SELECT {REG_COLUMNS} FROM registration_tokens WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(registration_from_row).transpose()
    }

    /// Revokes a registration token. [`Error::Conflict`] when it already was.
    pub async fn revoke_registration_token(
        &self,
        id: RegistrationTokenId,
        now: Timestamp,
    ) -> Result<RegistrationToken> {
        let row = sqlx::query(&format!(
            "UPDATE registration_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING {REG_COLUMNS}"
        ))
        .bind(id.0)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => registration_from_row(&row),
            None if self.get_registration_token(id).await?.is_some() => {
                Err(Error::Conflict("registration token already revoked".into()))
            }
            None => Err(Error::NotFound("registration token")),
        }
    }

    /// Takes one seat of the token with this hash, atomically: of any number of concurrent
    /// callers, exactly as many succeed as seats were left. Returns the token after the seat was
    /// taken; the refusal says why (revoked, then expired, then full).
    pub async fn take_seat(
        &self,
        token_hash: &TokenHashBytes,
        now: Timestamp,
    ) -> std::result::Result<RegistrationToken, TakeSeatError> {
        let mut conn = self.pool.acquire().await?;
        take_seat_in(&mut conn, token_hash, now).await
    }

    /// Gives a seat back after an enrollment failed past [`Self::take_seat`]. `false` when no
    /// seat was in use.
    pub async fn release_seat(&self, id: RegistrationTokenId) -> Result<bool> {
        let done =
            sqlx::query("UPDATE registration_tokens SET seats_used = seats_used - 1 WHERE id = $1 AND seats_used > 0")
                .bind(id.0)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores an API token. [`Error::MissingReference`] when the user does not exist.
    pub async fn create_api_token(&self, new: &NewApiToken, now: Timestamp) -> Result<ApiToken> {
        let row = sqlx::query(&format!(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {API_COLUMNS}"
        ))
        .bind(new.user_id.0)
        .bind(&new.token_hash[..])
        .bind(new.label.as_str())
        .bind(ms(now))
        .bind(ms(new.expires_at))
        .fetch_one(&self.pool)
        .await
        .classify(&[("token_hash", "API token")], "user")?;
        api_from_row(&row)
    }

    /// The token with this hash and its owner, if the token may be used at `now`: not revoked,
    /// not expired, and its owner not disabled.
    pub async fn find_active_api_token(
        &self,
        token_hash: &TokenHashBytes,
        now: Timestamp,
    ) -> Result<Option<(ApiToken, User)>> {
        let row = sqlx::query(&format!(
            "SELECT t.id AS token_id, t.label AS token_label, t.created_at AS token_created_at, \
             t.expires_at AS token_expires_at, t.last_used_at AS token_last_used_at, {} \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND u.disabled = 0",
            prefixed("u", USER_COLUMNS)
        ))
        .bind(&token_hash[..])
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        let token = ApiToken {
            id: ApiTokenId(row.int("token_id")?),
            user_id: user.id,
            label: row.text("token_label")?,
            created_at: row.ts("token_created_at")?,
            expires_at: row.ts("token_expires_at")?,
            last_used_at: row.opt_ts("token_last_used_at")?,
            revoked_at: None,
        };
        Ok(Some((token, user)))
    }

    /// Records a use of the token. Cheap: writes only when the stored time is more than
    /// [`API_TOKEN_TOUCH_INTERVAL_MS`] old.
    pub async fn touch_api_token(&self, id: ApiTokenId, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(id.0)
        .bind(ms(now))
        .bind(ms(now).saturating_sub(API_TOKEN_TOUCH_INTERVAL_MS))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The API token with this id (to check its owner before revoking).
    pub async fn get_api_token(&self, id: ApiTokenId) -> Result<Option<ApiToken>> {
        let row = sqlx::query(&format!("SELECT {API_COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(api_from_row).transpose()
    }

    /// A user's API tokens, newest first, revoked and expired ones included.
    pub async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(&format!("SELECT {API_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id DESC"))
            .bind(user.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(api_from_row).collect()
    }

    /// Every user's API tokens, newest first (for admins).
    pub async fn list_all_api_tokens(&self, paging: Paging) -> Result<Page<ApiToken>> {
        self.fetch_page(SqlBuilder::default(), API_COLUMNS, "api_tokens", "id DESC", paging, api_from_row).await
    }

    /// Revokes an API token. The store does not check who asks: the caller checks that it is the
    /// owner or an admin. [`Error::Conflict`] when it already was revoked.
    pub async fn revoke_api_token(&self, id: ApiTokenId, now: Timestamp) -> Result<ApiToken> {
        let row = sqlx::query(&format!(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING {API_COLUMNS}"
        ))
        .bind(id.0)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => api_from_row(&row),
            None if self.get_api_token(id).await?.is_some() => Err(Error::Conflict("API token already revoked".into())),
            None => Err(Error::NotFound("API token")),
        }
    }
}
