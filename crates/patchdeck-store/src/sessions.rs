//! Login sessions and their rotating refresh tokens.
//!
//! A session lives until it is revoked, until it has been idle for the idle timeout, or until
//! its absolute lifetime ends, whichever comes first. Each refresh token is good for one use:
//! [`Store::rotate_refresh`] marks it used and issues the next one. Presenting a used token again
//! means it was copied, so the whole session is revoked (refresh token reuse detection).

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::sql::{ms, ms_after, RowExt};
use crate::tokens::TokenHashBytes;
use crate::types::{SessionId, UserId};
use crate::Store;

/// The reason [`Store::rotate_refresh`] records when it detects reuse.
pub const REUSE_REASON: &str = "refresh token reuse";

/// A login session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// Its id (the `sid` claim of access tokens).
    pub id: SessionId,
    /// The signed-in user.
    pub user_id: UserId,
    /// Login time.
    pub created_at: Timestamp,
    /// Last refresh.
    pub last_used_at: Timestamp,
    /// Ends unless refreshed before.
    pub idle_expires_at: Timestamp,
    /// Ends at the latest.
    pub absolute_expires_at: Timestamp,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked ("logout", [`REUSE_REASON`], …).
    pub revoked_reason: Option<String>,
    /// Client address at login.
    pub source_ip: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// Second factor used at login ("totp", "webauthn", "recovery_code"), if any.
    pub mfa_method: Option<String>,
}

impl Session {
    /// Whether the session may be used at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }
}

/// A session to open at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The user.
    pub user_id: UserId,
    /// SHA-256 of the first refresh token.
    pub refresh_token_hash: TokenHashBytes,
    /// How long the session survives without a refresh.
    pub idle_timeout: SignedDuration,
    /// How long it survives at most.
    pub absolute_lifetime: SignedDuration,
    /// Client address.
    pub source_ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Second factor used, if any.
    pub mfa_method: Option<String>,
}

/// What [`Store::rotate_refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token was valid and is now used up; the new one is issued.
    Rotated {
        /// The session after the refresh.
        session: Session,
        /// Its user.
        user_id: UserId,
    },
    /// The old token had been used before: the session is now revoked with [`REUSE_REASON`].
    Reused {
        /// The revoked session.
        session_id: SessionId,
    },
    /// Unknown token, or its session is revoked or expired. Nothing changed.
    Invalid,
}

const COLUMNS: &str = "id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, revoked_at, \
    revoked_reason, source_ip, user_agent, mfa_method";

fn from_row(row: &AnyRow) -> Result<Session> {
    Ok(Session {
        id: SessionId(row.int("id")?),
        user_id: UserId(row.int("user_id")?),
        created_at: row.ts("created_at")?,
        last_used_at: row.ts("last_used_at")?,
        idle_expires_at: row.ts("idle_expires_at")?,
        absolute_expires_at: row.ts("absolute_expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
        revoked_reason: row.opt_text("revoked_reason")?,
        source_ip: row.opt_text("source_ip")?,
        user_agent: row.opt_text("user_agent")?,
        mfa_method: row.opt_text("mfa_method")?,
    })
}

impl Store {
    /// Opens a session with its first refresh token.
    pub async fn create_session(&self, new: &NewSession, now: Timestamp) -> Result<Session> {
        let absolute = ms_after(now, new.absolute_lifetime)?;
        let idle = ms_after(now, new.idle_timeout)?.min(absolute);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO sessions (user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, \
             source_ip, user_agent, mfa_method) VALUES ($1, $2, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(new.user_id.0)
        .bind(ms(now))
        .bind(idle)
        .bind(absolute)
        .bind(new.source_ip.as_deref())
        .bind(new.user_agent.as_deref())
        .bind(new.mfa_method.as_deref())
        .fetch_one(&mut *tx)
        .await
        .classify(&[], "user")?;
        let session = from_row(&row)?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)")
            .bind(&new.refresh_token_hash[..])
            .bind(session.id.0)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .classify(&[("refresh_tokens", "refresh token")], "session")?;
        tx.commit().await?;
        Ok(session)
    }

    /// Exchanges a refresh token for a new one, atomically.
    ///
    /// The old token is marked used with `UPDATE … WHERE used_at IS NULL`; whichever caller's
    /// update changes the row wins. A token that exists but was already used means reuse: the
    /// session is revoked. A used-up winner still gets [`RotateOutcome::Invalid`] if its session
    /// is revoked or expired. On success the idle expiry moves to `now + idle_timeout` (never past
    /// the absolute expiry).
    pub async fn rotate_refresh(
        &self,
        old_hash: &TokenHashBytes,
        new_hash: &TokenHashBytes,
        now: Timestamp,
        idle_timeout: SignedDuration,
    ) -> Result<RotateOutcome> {
        let idle = ms_after(now, idle_timeout)?;
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL RETURNING session_id",
        )
        .bind(&old_hash[..])
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(claimed) = claimed else {
            let known = sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(&old_hash[..])
                .fetch_optional(&mut *tx)
                .await?;
            let Some(known) = known else { return Ok(RotateOutcome::Invalid) };
            let session_id = SessionId(known.int("session_id")?);
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(session_id.0)
            .bind(ms(now))
            .bind(REUSE_REASON)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::warn!(session.id = %session_id, "refresh token reused; session revoked");
            return Ok(RotateOutcome::Reused { session_id });
        };
        let session_id = claimed.int("session_id")?;
        let row = sqlx::query(&format!(
            "UPDATE sessions SET last_used_at = $2, \
             idle_expires_at = CASE WHEN $3 < absolute_expires_at THEN $3 ELSE absolute_expires_at END \
             WHERE id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 AND absolute_expires_at > $2 \
             RETURNING {COLUMNS}"
        ))
        .bind(session_id)
        .bind(ms(now))
        .bind(idle)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Rolls back: the token of a dead session stays as it was.
            return Ok(RotateOutcome::Invalid);
        };
        let session = from_row(&row)?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)")
            .bind(&new_hash[..])
            .bind(session_id)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .classify(&[("refresh_tokens", "refresh token")], "session")?;
        tx.commit().await?;
        Ok(RotateOutcome::Rotated { user_id: session.user_id, session })
    }

    /// The session with this id.
    pub async fn get_session(&self, id: SessionId) -> Result<Option<Session>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A user's sessions, newest first, ended ones included (see [`Session::is_active`]).
    pub async fn list_sessions(&self, user: UserId) -> Result<Vec<Session>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE user_id = $1 ORDER BY id DESC"))
            .bind(user.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes a session. `false` when it was already revoked (the first reason stays).
    pub async fn revoke_session(&self, id: SessionId, reason: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id.0)
        .bind(ms(now))
        .bind(reason)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        match self.get_session(id).await? {
            Some(_) => Ok(false),
            None => Err(Error::NotFound("session")),
        }
    }

    /// Revokes every unrevoked session of a user (password change, disable, "log out
    /// everywhere"); returns how many.
    pub async fn revoke_user_sessions(&self, user: UserId, reason: &str, now: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.0)
        .bind(ms(now))
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Whether the session may be used at `now`: not revoked, not idle or absolutely expired,
    /// and its user not disabled. One indexed lookup; the web layer calls it per request so a
    /// revocation takes effect before the access token expires.
    pub async fn session_active(&self, id: SessionId, now: Timestamp) -> Result<bool> {
        let row = sqlx::query(
            "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.revoked_at IS NULL \
             AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2 AND u.disabled = 0",
        )
        .bind(id.0)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Deletes sessions (and their refresh tokens) whose absolute expiry is before `before`;
    /// returns how many. For the pruner.
    pub async fn delete_sessions_expired_before(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE absolute_expires_at < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
