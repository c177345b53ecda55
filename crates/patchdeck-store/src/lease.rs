//! Leases: of several processes sharing one database, one at a time does a job that must not
//! run twice (the push worker, which polls every push host).
//!
//! On PostgreSQL a lease is a session-level advisory lock (`pg_try_advisory_lock`) held on a
//! connection of its own, outside the pool: it lasts exactly as long as that connection, so a
//! process that dies, or loses its database connection, gives the lease up without anyone
//! cleaning up, and another process takes it at its next try. On SQLite one process owns the
//! database, so a lease is always granted.

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

use crate::error::Result;
use crate::Store;

/// A job that at most one process runs at a time; the value is the advisory-lock key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseKey(pub i64);

impl LeaseKey {
    /// The push worker ("pd-push" in ASCII).
    pub const PUSH_WORKER: LeaseKey = LeaseKey(0x0070_642d_7075_7368);
}

/// A held lease; dropping it gives it up.
#[derive(Debug)]
pub struct Lease {
    key: LeaseKey,
    /// The connection holding the advisory lock; `None` on SQLite.
    conn: Option<PgConnection>,
}

impl Store {
    /// Takes `key` if no other process holds it: `Ok(None)` when another one does.
    pub async fn try_lease(&self, key: LeaseKey) -> Result<Option<Lease>> {
        let Some(url) = &self.listen_url else { return Ok(Some(Lease { key, conn: None })) };
        let mut conn = PgConnection::connect(url).await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key.0).fetch_one(&mut conn).await?;
        if held {
            Ok(Some(Lease { key, conn: Some(conn) }))
        } else {
            // Closing the connection politely; an error here changes nothing.
            let _ = conn.close().await;
            Ok(None)
        }
    }
}

impl Lease {
    pub fn key(&self) -> LeaseKey {
        self.key
    }

    /// Whether the lease still holds: its connection answers. Once this fails the lease is
    /// lost (the database ended the session, so the lock is free for others) and the job must
    /// stop.
    pub async fn check(&mut self) -> Result<()> {
        if let Some(conn) = &mut self.conn {
            conn.execute("SELECT 1").await?;
        }
        Ok(())
    }

    /// Gives the lease up now (dropping it does too, when the connection closes).
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(self.key.0).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}
