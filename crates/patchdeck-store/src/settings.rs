//! Instance settings: JSON values under text keys, changed at run time from the UI.

use jiff::Timestamp;
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::sql::{ms, RowExt};
use crate::types::UserId;
use crate::Store;

/// A stored setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// Its key, e.g. `smtp.host`.
    pub key: String,
    /// Its value.
    pub value: serde_json::Value,
    /// Last change.
    pub updated_at: Timestamp,
    /// Who changed it last (unset for the system or a deleted user).
    pub updated_by: Option<UserId>,
}

fn parse_value(key: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|_| Error::Corrupt(format!("setting {key:?} is not JSON")))
}

fn from_row(row: &AnyRow) -> Result<Setting> {
    let key = row.text("key")?;
    let value = parse_value(&key, &row.text("value")?)?;
    Ok(Setting { value, updated_at: row.ts("updated_at")?, updated_by: row.opt_int("updated_by")?.map(UserId), key })
}

fn check_key(key: &str) -> Result<()> {
    if key.trim().is_empty() {
        return Err(Error::Invalid("setting key is empty".into()));
    }
    Ok(())
}

impl Store {
    /// The value of a setting.
    pub async fn get_setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        row.map(|row| parse_value(key, &row.text("value")?)).transpose()
    }

    /// Creates or replaces a setting.
    pub async fn set_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        by: Option<UserId>,
        now: Timestamp,
    ) -> Result<()> {
        check_key(key)?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(key)
        .bind(value.to_string())
        .bind(ms(now))
        .bind(by.map(|id| id.0))
        .execute(&self.pool)
        .await
        .classify(&[], "user")?;
        Ok(())
    }

    /// Every setting, by key.
    pub async fn list_settings(&self) -> Result<Vec<Setting>> {
        let order = self.text_order("key");
        let rows = sqlx::query(&format!("SELECT key, value, updated_at, updated_by FROM settings ORDER BY {order}"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes a setting; `false` when it did not exist.
    pub async fn delete_setting(&self, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM settings WHERE key = $1").bind(key).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }
}
