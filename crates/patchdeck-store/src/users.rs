//! User accounts: creation, lookup, listing, passwords and lockout, TOTP and recovery codes, and
//! the link to an OIDC identity.

use std::collections::HashSet;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::sql::{contains_pattern, ms, ms_after, RowExt, SqlBuilder};
use crate::types::{text_enum, Page, Paging, SortDir, UserId};
use crate::Store;

text_enum! {
    /// What a user may do. Operators are limited to the hosts their groups can see.
    Role ("role") {
        /// Everything, including users, settings and the CA.
        Admin = "admin",
        /// Patches and manages the hosts in scope.
        Operator = "operator",
        /// Reads only.
        Viewer = "viewer",
    }
}

text_enum! {
    /// Where a user's identity comes from.
    AuthSource ("auth source") {
        /// A local password (and optional MFA).
        Local = "local",
        /// An OpenID Connect provider (single sign-on).
        Oidc = "oidc",
    }
}

/// The identity of a user at an OpenID Connect provider: unique per issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider's issuer URL (`iss`).
    pub issuer: String,
    /// The user's subject at that provider (`sub`).
    pub subject: String,
}

/// A user account. `Debug` hides the password hash and the TOTP secret.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Login name, always lower case.
    pub username: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// Argon2 PHC string; `None` for users who sign in only through SSO.
    pub password_hash: Option<String>,
    /// Where the identity comes from.
    pub auth_source: AuthSource,
    /// The linked OIDC identity, if any.
    pub oidc: Option<OidcIdentity>,
    /// The user must set a new password at the next login.
    pub must_change_password: bool,
    /// A disabled user cannot sign in, and their API tokens stop working.
    pub disabled: bool,
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    /// Logins are refused until then.
    pub locked_until: Option<Timestamp>,
    /// The last successful login.
    pub last_login_at: Option<Timestamp>,
    /// The TOTP seed, encrypted by the caller; stored as opaque bytes.
    pub totp_secret: Option<Vec<u8>>,
    /// TOTP is required at login.
    pub totp_enabled: bool,
    /// The last TOTP time step accepted (replay protection).
    pub totp_last_step: Option<u64>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change to the row.
    pub updated_at: Timestamp,
}

impl User {
    /// Whether logins are refused at `now` because of too many failures.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "[redacted]"))
            .field("auth_source", &self.auth_source)
            .field("oidc", &self.oidc)
            .field("must_change_password", &self.must_change_password)
            .field("disabled", &self.disabled)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .field("last_login_at", &self.last_login_at)
            .field("totp_secret", &self.totp_secret.as_ref().map(|_| "[redacted]"))
            .field("totp_enabled", &self.totp_enabled)
            .field("totp_last_step", &self.totp_last_step)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A user to create. `Debug` hides the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Login name; stored lower case, so names differing only in case collide.
    pub username: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// Argon2 PHC string, or `None` for an SSO-only user.
    pub password_hash: Option<String>,
    /// Where the identity comes from.
    pub auth_source: AuthSource,
    /// The OIDC identity to link, if any.
    pub oidc: Option<OidcIdentity>,
    /// Force a password change at the first login.
    pub must_change_password: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "[redacted]"))
            .field("auth_source", &self.auth_source)
            .field("oidc", &self.oidc)
            .field("must_change_password", &self.must_change_password)
            .finish()
    }
}

/// Fields of a user to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Disable or enable the account.
    pub disabled: Option<bool>,
}

/// How [`Store::list_users`] orders users (ties are broken by id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserSort {
    /// By login name.
    #[default]
    Username,
    /// By creation time.
    CreatedAt,
    /// By last login; users who never logged in come last in both directions.
    LastLogin,
}

/// Which users [`Store::list_users`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only users with this role.
    pub role: Option<Role>,
    /// Substring of the username or display name, ignoring the case of ASCII letters; `%` and
    /// `_` match literally.
    pub search: Option<String>,
    /// Order.
    pub sort: UserSort,
    /// Direction.
    pub dir: SortDir,
    /// Page.
    pub paging: Paging,
}

/// The state after a failed login, from [`Store::record_login_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailure {
    /// Consecutive failures, this one included.
    pub failed_logins: u32,
    /// Set when this failure reached the threshold (or the account was already locked).
    pub locked_until: Option<Timestamp>,
}

pub(crate) const USER_COLUMNS: &str = "id, username, display_name, role, password_hash, auth_source, \
    oidc_issuer, oidc_subject, must_change_password, disabled, failed_logins, locked_until_at, last_login_at, \
    totp_secret, totp_enabled, totp_last_step, created_at, updated_at";

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User> {
    let oidc = match (row.opt_text("oidc_issuer")?, row.opt_text("oidc_subject")?) {
        (Some(issuer), Some(subject)) => Some(OidcIdentity { issuer, subject }),
        _ => None,
    };
    let totp_last_step = row
        .opt_int("totp_last_step")?
        .map(|step| u64::try_from(step).map_err(|_| Error::Corrupt(format!("negative TOTP step {step}"))))
        .transpose()?;
    Ok(User {
        id: UserId(row.int("id")?),
        username: row.text("username")?,
        display_name: row.text("display_name")?,
        role: row.parse("role")?,
        password_hash: row.opt_text("password_hash")?,
        auth_source: row.parse("auth_source")?,
        oidc,
        must_change_password: row.flag("must_change_password")?,
        disabled: row.flag("disabled")?,
        failed_logins: row.count("failed_logins")?,
        locked_until: row.opt_ts("locked_until_at")?,
        last_login_at: row.opt_ts("last_login_at")?,
        totp_secret: row.opt_blob("totp_secret")?,
        totp_enabled: row.flag("totp_enabled")?,
        totp_last_step,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// Unique constraints of `users`, for [`crate::error::classify`].
const USER_UNIQUES: &[(&str, &str)] = &[("username", "username"), ("oidc", "OIDC identity")];

fn normalize_username(username: &str) -> Result<String> {
    let username = username.trim().to_lowercase();
    if username.is_empty() {
        return Err(Error::Invalid("username is empty".into()));
    }
    Ok(username)
}

impl Store {
    /// Creates a user. [`Error::Conflict`] when the (lower-cased) username or the OIDC identity
    /// is taken.
    pub async fn create_user(&self, new: &NewUser, now: Timestamp) -> Result<User> {
        let username = normalize_username(&new.username)?;
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, display_name, role, password_hash, auth_source, oidc_issuer, \
             oidc_subject, must_change_password, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {USER_COLUMNS}"
        ))
        .bind(username)
        .bind(new.display_name.as_str())
        .bind(new.role.as_str())
        .bind(new.password_hash.as_deref())
        .bind(new.auth_source.as_str())
        .bind(new.oidc.as_ref().map(|oidc| oidc.issuer.as_str()))
        .bind(new.oidc.as_ref().map(|oidc| oidc.subject.as_str()))
        .bind(i64::from(new.must_change_password))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(USER_UNIQUES, "record")?;
        user_from_row(&row)
    }

    /// The user with this id.
    pub async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user with this login name, compared case-insensitively.
    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
            .bind(username.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user linked to this OIDC identity.
    pub async fn get_user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        let row =
            sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2"))
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Links an OIDC identity to an existing user. [`Error::Conflict`] when another user has it.
    pub async fn link_oidc(&self, id: UserId, identity: &OidcIdentity, now: Timestamp) -> Result<User> {
        let row = sqlx::query(&format!(
            "UPDATE users SET oidc_issuer = $2, oidc_subject = $3, updated_at = $4 WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .bind(id.0)
        .bind(identity.issuer.as_str())
        .bind(identity.subject.as_str())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .classify(USER_UNIQUES, "record")?;
        row.as_ref().map(user_from_row).transpose()?.ok_or(Error::NotFound("user"))
    }

    /// One page of users matching `filter`, with the total that match.
    pub async fn list_users(&self, filter: &UserFilter) -> Result<Page<User>> {
        let mut sql = SqlBuilder::default();
        if let Some(role) = filter.role {
            let role = sql.arg(role.as_str());
            sql.condition(format!("role = {role}"));
        }
        if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
            let pattern = sql.arg(contains_pattern(search));
            sql.condition(format!(
                "(LOWER(username) LIKE {pattern} ESCAPE '\\' OR LOWER(display_name) LIKE {pattern} ESCAPE '\\')"
            ));
        }
        let dir = filter.dir.sql();
        let order = match filter.sort {
            UserSort::Username => format!("{} {dir}, id {dir}", self.text_order("username")),
            UserSort::CreatedAt => format!("created_at {dir}, id {dir}"),
            UserSort::LastLogin => {
                format!("CASE WHEN last_login_at IS NULL THEN 1 ELSE 0 END, last_login_at {dir}, id {dir}")
            }
        };
        self.fetch_page(sql, USER_COLUMNS, "users", &order, filter.paging, user_from_row).await
    }

    /// Changes the display name, role or disabled flag. Disabling does not end sessions: call
    /// [`Store::revoke_user_sessions`] too (though [`Store::session_active`] already refuses
    /// sessions of disabled users).
    pub async fn update_user(&self, id: UserId, update: &UserUpdate, now: Timestamp) -> Result<User> {
        let row = sqlx::query(&format!(
            "UPDATE users SET display_name = COALESCE($2, display_name), role = COALESCE($3, role), \
             disabled = COALESCE($4, disabled), updated_at = $5 WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .bind(id.0)
        .bind(update.display_name.as_deref())
        .bind(update.role.map(Role::as_str))
        .bind(update.disabled.map(i64::from))
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()?.ok_or(Error::NotFound("user"))
    }

    /// Sets a new password hash (Argon2 PHC string) and whether it must be changed at the next
    /// login. Also clears the failed-login counter and any lockout.
    pub async fn set_password(&self, id: UserId, password_hash: &str, must_change: bool, now: Timestamp) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, must_change_password = $3, failed_logins = 0, \
             locked_until_at = NULL, updated_at = $4 WHERE id = $1",
        )
        .bind(id.0)
        .bind(password_hash)
        .bind(i64::from(must_change))
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("user"));
        }
        Ok(())
    }

    /// Counts a failed login, atomically. When the count reaches `max_failures` (0 disables
    /// lockout), the account is locked until `now + lockout_for`. The counter is not reset by the
    /// lockout, so once past the threshold every further failure locks again: after a lockout an
    /// attacker gets one guess per period, until a successful login resets the count.
    pub async fn record_login_failure(
        &self,
        id: UserId,
        now: Timestamp,
        max_failures: u32,
        lockout_for: SignedDuration,
    ) -> Result<LoginFailure> {
        let until = ms_after(now, lockout_for)?;
        let row = sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1, \
             locked_until_at = CASE WHEN $3 > 0 AND failed_logins + 1 >= $3 THEN $4 ELSE locked_until_at END, \
             updated_at = $2 WHERE id = $1 RETURNING failed_logins, locked_until_at",
        )
        .bind(id.0)
        .bind(ms(now))
        .bind(i64::from(max_failures))
        .bind(until)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("user"))?;
        Ok(LoginFailure { failed_logins: row.count("failed_logins")?, locked_until: row.opt_ts("locked_until_at")? })
    }

    /// Records a successful login: resets the failure count and lockout, sets the last login.
    pub async fn record_login_success(&self, id: UserId, now: Timestamp) -> Result<()> {
        let done =
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until_at = NULL, last_login_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(ms(now))
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("user"));
        }
        Ok(())
    }

    /// Deletes a user with their sessions, API tokens, recovery codes, WebAuthn credentials and
    /// group memberships. Audit entries keep their actor text and id.
    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("user"));
        }
        Ok(())
    }

    /// Stores (or with `None` removes) the encrypted TOTP seed and whether TOTP is required.
    /// Forgets the last accepted step, since it belonged to the old seed.
    pub async fn set_totp(&self, id: UserId, secret: Option<&[u8]>, enabled: bool, now: Timestamp) -> Result<()> {
        if enabled && secret.is_none() {
            return Err(Error::Invalid("TOTP cannot be enabled without a secret".into()));
        }
        let done = sqlx::query(
            "UPDATE users SET totp_secret = $2, totp_enabled = $3, totp_last_step = NULL, updated_at = $4 WHERE id = $1",
        )
        .bind(id.0)
        .bind(secret)
        .bind(i64::from(enabled))
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("user"));
        }
        Ok(())
    }

    /// Claims a TOTP time step, atomically: `true` only if `step` is later than every step
    /// accepted before, so a code can be used once and an older code never. `false` for a
    /// replayed step (or a missing user).
    pub async fn claim_totp_step(&self, id: UserId, step: u64) -> Result<bool> {
        let step = i64::try_from(step).map_err(|_| Error::Invalid(format!("TOTP step {step} is out of range")))?;
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(id.0)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces all recovery codes of a user with these SHA-256 hashes, in one transaction.
    pub async fn replace_recovery_codes(&self, id: UserId, hashes: &[[u8; 32]]) -> Result<()> {
        if hashes.iter().collect::<HashSet<_>>().len() != hashes.len() {
            return Err(Error::Invalid("duplicate recovery code".into()));
        }
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT id FROM users WHERE id = $1").bind(id.0).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Err(Error::NotFound("user"));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(id.0).execute(&mut *tx).await?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(id.0)
                .bind(&hash[..])
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uses up a recovery code, atomically: `true` the first time for a code of this user,
    /// `false` afterwards and for unknown codes.
    pub async fn consume_recovery_code(&self, id: UserId, hash: &[u8; 32], now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(id.0)
        .bind(&hash[..])
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many unused recovery codes the user has left.
    pub async fn remaining_recovery_codes(&self, id: UserId) -> Result<u32> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(id.0)
            .fetch_one(&self.pool)
            .await?;
        row.count("n")
    }

    /// How many accounts exist (the manager creates the first admin when there are none).
    pub async fn count_users(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?;
        Ok(u64::from(row.count("n")?))
    }
}
