//! The hash-chained audit log.
//!
//! **Chain.** Entry `n` stores `prev_hash` (the hash of entry `n - 1`; 32 zero bytes for the
//! first) and `hash = SHA-256(encoding)`, where the encoding is, in this order:
//!
//! ```text
//! "patchdeck-audit-v1"                       18 bytes, a domain separator
//! bytes(prev_hash)
//! i64(id) i64(at, Unix ms)                   8 bytes each, big-endian two's complement
//! str(actor) opt_i64(actor_user_id) str(action) opt_str(target) opt_str(source_ip)
//! str(outcome) str(details)                  details = the stored JSON text
//!
//! bytes(b) / str(s) = u64 big-endian length, then the bytes (UTF-8 for text)
//! opt_x(None) = 0x00;  opt_x(Some(v)) = 0x01 followed by x(v)
//! ```
//!
//! Every variable-length field is length-prefixed and every optional field tagged, so no two
//! different entries share an encoding.
//!
//! **Appending** is one transaction that first runs `UPDATE audit_head SET seq = seq + 1 …
//! RETURNING seq, hash`. That statement takes SQLite's write lock (the transaction is
//! `BEGIN IMMEDIATE`) or PostgreSQL's row lock on the single head row, so appenders queue up and
//! the chain never forks; the entry's id is the new `seq`, which makes ids dense.
//!
//! **Verification** walks the entries in id order, in batches, inside one read snapshot. It
//! starts at the head's *anchor* (first expected id and its `prev_hash`) and must end exactly at
//! the head's `seq` and `hash`, so an edited, inserted, or deleted entry (first, middle or last)
//! is found. **Pruning** deletes the oldest entries and moves the anchor to the oldest remaining
//! one, whose `prev_hash` is then trusted.
//!
//! The chain proves that rows were not changed *behind Patchdeck's back* short of rewriting the
//! whole chain and the head; exporting entries ([`Store::audit_entries_after`]) to storage the
//! database cannot write is what protects against an attacker who owns the database.

use jiff::Timestamp;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::error::Result;
use crate::sql::{ms, RowExt, SqlBuilder};
use crate::types::{text_enum, AuditId, Page, Paging, SortDir, UserId};
use crate::{Backend, Store};

text_enum! {
    /// How an audited action ended.
    AuditOutcome ("audit outcome") {
        /// It was done.
        Success = "success",
        /// It was attempted and failed (bad password, package manager error).
        Failure = "failure",
        /// It was refused by access control.
        Denied = "denied",
    }
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When it happened.
    pub at: Timestamp,
    /// Who: `user:alice`, `host:12`, `system`, `cli`.
    pub actor: String,
    /// The acting user's id, when a user acted (kept after the user is deleted).
    pub actor_user_id: Option<UserId>,
    /// What, as a dotted name: `auth.login`, `host.delete`.
    pub action: String,
    /// On what: `host:12`, `user:7`.
    pub target: Option<String>,
    /// The client address.
    pub source_ip: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Anything else, as JSON (never secrets).
    pub details: serde_json::Value,
}

/// A stored entry. Serializes with the hashes in hex, one JSON line per entry for export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Sequence number: dense, starting at 1.
    pub id: AuditId,
    /// When it happened.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// The acting user's id.
    pub actor_user_id: Option<UserId>,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// The client address.
    pub source_ip: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Details.
    pub details: serde_json::Value,
    /// Hash of the previous entry.
    #[serde(serialize_with = "serialize_hex")]
    pub prev_hash: Vec<u8>,
    /// Hash of this entry (see the module documentation).
    #[serde(serialize_with = "serialize_hex")]
    pub hash: Vec<u8>,
}

impl AuditEntry {
    /// Recomputes this entry's hash from its fields and `prev_hash`, with `details` serialized by
    /// `serde_json` (which is how the store wrote it). Lets an exported log be checked offline.
    pub fn computed_hash(&self) -> [u8; 32] {
        let details = self.details.to_string();
        entry_hash(
            &self.prev_hash,
            &HashedFields {
                id: self.id.0,
                at: ms(self.at),
                actor: &self.actor,
                actor_user_id: self.actor_user_id.map(|id| id.0),
                action: &self.action,
                target: self.target.as_deref(),
                source_ip: self.source_ip.as_deref(),
                outcome: self.outcome.as_str(),
                details: &details,
            },
        )
    }
}

/// Which entries [`Store::list_audit`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Actions starting with this text (case-sensitive): `auth.` matches `auth.login`.
    pub action_prefix: Option<String>,
    /// Only this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Exactly this target.
    pub target: Option<String>,
    /// At or after this time.
    pub from: Option<Timestamp>,
    /// Before this time.
    pub to: Option<Timestamp>,
    /// Ids greater than this.
    pub after_id: Option<AuditId>,
    /// Ids smaller than this (a cursor for newest-first paging).
    pub before_id: Option<AuditId>,
    /// By id; newest first ([`SortDir::Desc`]) by default.
    pub order: SortDir,
    /// Page.
    pub paging: Paging,
}

impl Default for AuditFilter {
    fn default() -> Self {
        Self {
            actor: None,
            action_prefix: None,
            outcome: None,
            target: None,
            from: None,
            to: None,
            after_id: None,
            before_id: None,
            order: SortDir::Desc,
            paging: Paging::default(),
        }
    }
}

/// Result of [`Store::verify_audit_chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Entries verified before the first break (all of them when intact).
    pub checked: u64,
    /// The first entry that is missing, altered, or does not link to its predecessor.
    pub first_broken: Option<AuditId>,
}

impl ChainReport {
    /// No break found.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

const DOMAIN: &[u8] = b"patchdeck-audit-v1";
const COLUMNS: &str = "id, at, actor, actor_user_id, action, target, source_ip, outcome, details, prev_hash, hash";

struct HashedFields<'a> {
    id: i64,
    at: i64,
    actor: &'a str,
    actor_user_id: Option<i64>,
    action: &'a str,
    target: Option<&'a str>,
    source_ip: Option<&'a str>,
    outcome: &'a str,
    details: &'a str,
}

fn entry_hash(prev_hash: &[u8], fields: &HashedFields<'_>) -> [u8; 32] {
    fn bytes(h: &mut Sha256, value: &[u8]) {
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    }
    fn opt_str(h: &mut Sha256, value: Option<&str>) {
        match value {
            None => h.update([0]),
            Some(value) => {
                h.update([1]);
                bytes(h, value.as_bytes());
            }
        }
    }
    let mut h = Sha256::new();
    h.update(DOMAIN);
    bytes(&mut h, prev_hash);
    h.update(fields.id.to_be_bytes());
    h.update(fields.at.to_be_bytes());
    bytes(&mut h, fields.actor.as_bytes());
    match fields.actor_user_id {
        None => h.update([0]),
        Some(id) => {
            h.update([1]);
            h.update(id.to_be_bytes());
        }
    }
    bytes(&mut h, fields.action.as_bytes());
    opt_str(&mut h, fields.target);
    opt_str(&mut h, fields.source_ip);
    bytes(&mut h, fields.outcome.as_bytes());
    bytes(&mut h, fields.details.as_bytes());
    h.finalize().into()
}

fn serialize_hex<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_row(row: &AnyRow) -> Result<AuditEntry> {
    let id = row.int("id")?;
    let text = row.text("details")?;
    let details = serde_json::from_str(&text).unwrap_or_else(|_| {
        tracing::warn!(audit.id = id, "audit entry details are not JSON; returned as a string");
        serde_json::Value::String(text)
    });
    Ok(AuditEntry {
        id: AuditId(id),
        at: row.ts("at")?,
        actor: row.text("actor")?,
        actor_user_id: row.opt_int("actor_user_id")?.map(UserId),
        action: row.text("action")?,
        target: row.opt_text("target")?,
        source_ip: row.opt_text("source_ip")?,
        outcome: row.parse("outcome")?,
        details,
        prev_hash: row.blob("prev_hash")?,
        hash: row.blob("hash")?,
    })
}

/// Recomputes a stored row's hash from its raw columns (the stored details text, not a
/// re-serialization), so any edit of any column shows.
fn stored_row_hash(row: &AnyRow, prev_hash: &[u8]) -> Result<[u8; 32]> {
    let (actor, action, outcome, details) =
        (row.text("actor")?, row.text("action")?, row.text("outcome")?, row.text("details")?);
    let (target, source_ip) = (row.opt_text("target")?, row.opt_text("source_ip")?);
    Ok(entry_hash(
        prev_hash,
        &HashedFields {
            id: row.int("id")?,
            at: row.int("at")?,
            actor: &actor,
            actor_user_id: row.opt_int("actor_user_id")?,
            action: &action,
            target: target.as_deref(),
            source_ip: source_ip.as_deref(),
            outcome: &outcome,
            details: &details,
        },
    ))
}

impl Store {
    /// Appends an entry to the chain (see the module documentation for the locking).
    pub async fn append_audit(&self, new: &NewAuditEntry) -> Result<AuditEntry> {
        let details = new.details.to_string();
        let mut tx = self.begin_write().await?;
        let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
        let id = head.int("seq")?;
        let prev_hash = head.blob("hash")?;
        let hash = entry_hash(
            &prev_hash,
            &HashedFields {
                id,
                at: ms(new.at),
                actor: &new.actor,
                actor_user_id: new.actor_user_id.map(|id| id.0),
                action: &new.action,
                target: new.target.as_deref(),
                source_ip: new.source_ip.as_deref(),
                outcome: new.outcome.as_str(),
                details: &details,
            },
        );
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, actor_user_id, action, target, source_ip, outcome, details, \
             prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(ms(new.at))
        .bind(new.actor.as_str())
        .bind(new.actor_user_id.map(|id| id.0))
        .bind(new.action.as_str())
        .bind(new.target.as_deref())
        .bind(new.source_ip.as_deref())
        .bind(new.outcome.as_str())
        .bind(details.as_str())
        .bind(prev_hash.as_slice())
        .bind(&hash[..])
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&hash[..]).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(AuditEntry {
            id: AuditId(id),
            at: Timestamp::from_millisecond(ms(new.at)).unwrap_or(new.at),
            actor: new.actor.clone(),
            actor_user_id: new.actor_user_id,
            action: new.action.clone(),
            target: new.target.clone(),
            source_ip: new.source_ip.clone(),
            outcome: new.outcome,
            details: new.details.clone(),
            prev_hash,
            hash: hash.to_vec(),
        })
    }

    /// One page of entries matching `filter`, with the total that match.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>> {
        let mut sql = SqlBuilder::default();
        if let Some(actor) = &filter.actor {
            let actor = sql.arg(actor.as_str());
            sql.condition(format!("actor = {actor}"));
        }
        if let Some(prefix) = filter.action_prefix.as_deref().filter(|p| !p.is_empty()) {
            // SUBSTR rather than LIKE: SQLite's LIKE ignores case, PostgreSQL's does not.
            let length = sql.arg(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX));
            let prefix = sql.arg(prefix);
            sql.condition(format!("SUBSTR(action, 1, CAST({length} AS INTEGER)) = {prefix}"));
        }
        if let Some(outcome) = filter.outcome {
            let outcome = sql.arg(outcome.as_str());
            sql.condition(format!("outcome = {outcome}"));
        }
        if let Some(target) = &filter.target {
            let target = sql.arg(target.as_str());
            sql.condition(format!("target = {target}"));
        }
        if let Some(from) = filter.from {
            let from = sql.arg(ms(from));
            sql.condition(format!("at >= {from}"));
        }
        if let Some(to) = filter.to {
            let to = sql.arg(ms(to));
            sql.condition(format!("at < {to}"));
        }
        if let Some(after) = filter.after_id {
            let after = sql.arg(after.0);
            sql.condition(format!("id > {after}"));
        }
        if let Some(before) = filter.before_id {
            let before = sql.arg(before.0);
            sql.condition(format!("id < {before}"));
        }
        let order = format!("id {}", filter.order.sql());
        self.fetch_page(sql, COLUMNS, "audit_log", &order, filter.paging, from_row).await
    }

    /// Up to `limit` entries with ids greater than `after`, oldest first: the cursor for
    /// streaming an export as JSON lines.
    pub async fn audit_entries_after(&self, after: Option<AuditId>, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after.map_or(0, |id| id.0))
            .bind(Paging::new(limit, 0).sql_limit())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Checks the whole chain from the anchor to the head, in one consistent snapshot, reading
    /// [`crate::StoreOptions::audit_verify_batch`] entries per query. Stops at the first break.
    pub async fn verify_audit_chain(&self) -> Result<ChainReport> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
        };
        let head = sqlx::query("SELECT seq, hash, anchor_id, anchor_hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let (seq, head_hash) = (head.int("seq")?, head.blob("hash")?);
        let mut expected_id = head.int("anchor_id")?;
        let mut expected_prev = head.blob("anchor_hash")?;
        let mut checked = 0_u64;
        let broken = |checked, id| Ok(ChainReport { checked, first_broken: Some(AuditId(id)) });
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE id >= $1 AND id <= $2 ORDER BY id LIMIT $3"
            ))
            .bind(expected_id)
            .bind(seq)
            .bind(i64::from(self.audit_verify_batch))
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let id = row.int("id")?;
                if id != expected_id {
                    return broken(checked, expected_id);
                }
                let prev_hash = row.blob("prev_hash")?;
                if prev_hash != expected_prev || stored_row_hash(row, &prev_hash)?[..] != row.blob("hash")?[..] {
                    return broken(checked, id);
                }
                checked += 1;
                expected_prev = row.blob("hash")?;
                expected_id += 1;
            }
        }
        if expected_id != seq + 1 {
            return broken(checked, expected_id);
        }
        if expected_prev != head_hash {
            return broken(checked, seq);
        }
        tx.commit().await?;
        Ok(ChainReport { checked, first_broken: None })
    }

    /// Deletes the oldest entries: every entry before the first one at or after `before` (a
    /// prefix of the chain, so an entry with an out-of-order time never leaves a hole). Moves the
    /// verification anchor to the oldest remaining entry. Returns how many were deleted.
    pub async fn prune_audit_before(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        // Lock the head first, like an append, so no entry is added while the anchor moves.
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash, anchor_id")
            .fetch_one(&mut *tx)
            .await?;
        let (seq, head_hash, anchor_id) = (head.int("seq")?, head.blob("hash")?, head.int("anchor_id")?);
        let first_kept = sqlx::query("SELECT id, prev_hash FROM audit_log WHERE at >= $1 ORDER BY id LIMIT 1")
            .bind(ms(before))
            .fetch_optional(&mut *tx)
            .await?;
        let (first_kept, anchor_hash) = match first_kept {
            Some(row) => (row.int("id")?, row.blob("prev_hash")?),
            None => (seq + 1, head_hash),
        };
        if first_kept <= anchor_id {
            return Ok(0);
        }
        let deleted = sqlx::query("DELETE FROM audit_log WHERE id < $1")
            .bind(first_kept)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE audit_head SET anchor_id = $1, anchor_hash = $2 WHERE id = 1")
            .bind(first_kept)
            .bind(anchor_hash.as_slice())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(deleted, anchor = first_kept, "pruned audit log");
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(target: Option<&'a str>, source_ip: Option<&'a str>) -> HashedFields<'a> {
        HashedFields {
            id: 1,
            at: 0,
            actor: "user:alice",
            actor_user_id: Some(1),
            action: "auth.login",
            target,
            source_ip,
            outcome: "success",
            details: "{}",
        }
    }

    #[test]
    fn optional_fields_cannot_be_shifted_into_each_other() {
        let zero = [0_u8; 32];
        let a = entry_hash(&zero, &fields(Some("x"), None));
        let b = entry_hash(&zero, &fields(None, Some("x")));
        let c = entry_hash(&zero, &fields(Some(""), None));
        let d = entry_hash(&zero, &fields(None, None));
        assert_ne!(a, b);
        assert_ne!(c, d);
        assert_ne!(entry_hash(&[1; 32], &fields(None, None)), d, "prev_hash is hashed");
    }

    #[test]
    fn the_encoding_is_pinned() {
        // Changing the encoding breaks every stored chain: this value must never change.
        let hash = entry_hash(&[0; 32], &fields(Some("host:12"), Some("10.0.0.1")));
        let mut manual = Sha256::new();
        manual.update(b"patchdeck-audit-v1");
        manual.update(32_u64.to_be_bytes());
        manual.update([0; 32]);
        manual.update(1_i64.to_be_bytes());
        manual.update(0_i64.to_be_bytes());
        manual.update(10_u64.to_be_bytes());
        manual.update(b"user:alice");
        manual.update([1]);
        manual.update(1_i64.to_be_bytes());
        manual.update(10_u64.to_be_bytes());
        manual.update(b"auth.login");
        manual.update([1]);
        manual.update(7_u64.to_be_bytes());
        manual.update(b"host:12");
        manual.update([1]);
        manual.update(8_u64.to_be_bytes());
        manual.update(b"10.0.0.1");
        manual.update(7_u64.to_be_bytes());
        manual.update(b"success");
        manual.update(2_u64.to_be_bytes());
        manual.update(b"{}");
        assert_eq!(hash, <[u8; 32]>::from(manual.finalize()));
    }
}
