//! Cross-process notifications: PostgreSQL `NOTIFY` / `LISTEN`, so that replicas sharing one
//! database wake each other (a command queued on one reaches an agent long-polling another).
//!
//! SQLite has no such thing and needs none: one process owns the file, and it notifies itself in
//! memory. [`Store::notify`] returns `false` there, telling the caller to deliver locally.

use sqlx::postgres::PgListener;

use crate::error::Result;
use crate::{Backend, Store};

/// One notification received by a [`Listener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

/// A dedicated PostgreSQL connection listening on some channels.
#[derive(Debug)]
pub struct Listener(PgListener);

impl Listener {
    /// The next notification. After a lost connection the listener reconnects and listens again
    /// by itself; notifications sent while it was away are lost, so callers re-read the state
    /// they care about after an error.
    pub async fn recv(&mut self) -> Result<Notification> {
        let n = self.0.recv().await?;
        Ok(Notification { channel: n.channel().to_owned(), payload: n.payload().to_owned() })
    }
}

impl Store {
    /// Sends `payload` (at most 8000 bytes) on `channel` to every listener, including this
    /// process's own. `Ok(false)` on SQLite: nothing was sent.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<bool> {
        if self.backend != Backend::Postgres {
            return Ok(false);
        }
        sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&self.pool).await?;
        Ok(true)
    }

    /// A listener on `channels`, on its own connection; `None` on SQLite.
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<Listener>> {
        let Some(url) = &self.listen_url else { return Ok(None) };
        let mut listener = PgListener::connect(url).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(Some(Listener(listener)))
    }
}
