//! Opening the database, migrations, backups and pool statistics.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;

use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Transaction};

use crate::config::{DatabaseConfig, StoreOptions};
use crate::error::{Error, Result};
use crate::sql::{RowExt, SqlBuilder};
use crate::types::{Page, Paging};

/// Schema of the embedded SQLite backend.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
/// Schema of the PostgreSQL backend.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite (one file, WAL mode).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connections of the pool, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Open connections, busy or idle.
    pub size: u32,
    /// Open connections waiting for work.
    pub idle: u32,
}

/// The manager's storage. Cloning is cheap: clones share one connection pool.
///
/// Every operation is an `async` method on this type, grouped by resource in the modules of this
/// crate (users, groups, hosts, tokens, sessions, certificates, audit, settings, WebAuthn).
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) audit_verify_batch: u32,
    /// The PostgreSQL URL, for `LISTEN` connections ([`Self::listen`]); `None` on SQLite.
    pub(crate) listen_url: Option<std::sync::Arc<str>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).field("pool", &self.pool_stats()).finish()
    }
}

impl Store {
    /// Opens the database with [`StoreOptions::default`]. Does not migrate: call
    /// [`Self::migrate`].
    pub async fn connect(config: &DatabaseConfig) -> Result<Self> {
        Self::connect_with(config, &StoreOptions::default()).await
    }

    /// Opens the database with explicit pool settings.
    ///
    /// SQLite: creates the file with mode 0600 when it is missing, switches it to WAL, and sets
    /// on every connection `foreign_keys = ON`, `synchronous = NORMAL` and the busy timeout.
    /// PostgreSQL: a pool of at most `max_connections`.
    pub async fn connect_with(config: &DatabaseConfig, options: &StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        match config {
            DatabaseConfig::Sqlite { path } => Self::connect_sqlite(path, options).await,
            DatabaseConfig::Postgres { url } => Self::connect_postgres(url, options).await,
        }
    }

    async fn connect_sqlite(path: &Path, options: &StoreOptions) -> Result<Self> {
        match path.to_str() {
            None => return Err(Error::Invalid(format!("SQLite path {} is not valid UTF-8", path.display()))),
            // sqlx passes the path through a URL and would decode `%41` as `A`: another file.
            Some(text) if text.contains('%') => {
                return Err(Error::Invalid(format!("SQLite path {text} contains '%'; choose another name")))
            }
            Some(_) => {}
        }
        create_private_file(path)?;
        // `Any` connects by URL; the pragmas a URL cannot carry are set in `after_connect`.
        let url = SqliteConnectOptions::new().filename(path).to_url_lossy();
        let connect_options = AnyConnectOptions::from_url(&url)?;

        // WAL is a property of the file; switch once, before other connections exist.
        let mut first = sqlx::AnyConnection::connect_with(&connect_options).await?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL").fetch_one(&mut first).await?;
        first.close().await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Unsupported(format!(
                "SQLite refused WAL mode for {} (journal mode {mode:?}); put the database on a local filesystem",
                path.display()
            )));
        }

        let busy_ms = i64::try_from(options.sqlite_busy_timeout.as_millis()).unwrap_or(i64::MAX);
        let pool = AnyPoolOptions::new()
            .max_connections(options.sqlite_max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings a connection before handing it out; SQLite connections live in this
            // process and do not go stale, so that ping is only CPU spent on every acquire (every
            // check-in takes several).
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    sqlx::query(&format!("PRAGMA busy_timeout = {busy_ms}")).execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await?;
        tracing::debug!(path = %path.display(), "opened SQLite database");
        Ok(Self {
            pool,
            backend: Backend::Sqlite,
            audit_verify_batch: options.audit_verify_batch.max(1),
            listen_url: None,
        })
    }

    async fn connect_postgres(url: &str, options: &StoreOptions) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::Invalid("a PostgreSQL URL starts with postgres:// or postgresql://".into()));
        }
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self {
            pool,
            backend: Backend::Postgres,
            audit_verify_batch: options.audit_verify_batch.max(1),
            listen_url: Some(url.into()),
        })
    }

    /// Applies the pending migrations of this backend. Safe to run again, and on PostgreSQL
    /// safe to run from several processes at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Runs a trivial query: whether the database answers (for health checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Open and idle connections of the pool.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats { size: self.pool.size(), idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX) }
    }

    /// Closes every connection; waits for the ones in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes a consistent copy of a live SQLite database to `target` (mode 0600), while other
    /// tasks keep reading and writing. `target` must not exist.
    ///
    /// This is SQLite's `VACUUM INTO`: it reads one transaction's snapshot, so the copy holds
    /// every transaction committed before it started and nothing of the ones after. PostgreSQL
    /// returns [`Error::Unsupported`]: use `pg_dump`.
    pub async fn backup_to(&self, target: &Path) -> Result<()> {
        if self.backend == Backend::Postgres {
            return Err(Error::Unsupported(
                "online backup of a PostgreSQL database: use pg_dump (or your provider's snapshots)".into(),
            ));
        }
        let Some(target_text) = target.to_str() else {
            return Err(Error::Invalid(format!("backup path {} is not valid UTF-8", target.display())));
        };
        // Create it ourselves (exclusively, 0600) so the copy of password hashes is never
        // world-readable; VACUUM INTO accepts an existing empty file.
        match OpenOptions::new().write(true).create_new(true).mode_private().open(target) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::Conflict(format!("backup target {} already exists", target.display())));
            }
            Err(err) => return Err(Error::Invalid(format!("cannot create backup file {}: {err}", target.display()))),
        }
        // The file name is a bound parameter: no quoting of the path is needed.
        if let Err(err) = sqlx::query("VACUUM INTO $1").bind(target_text).execute(&self.pool).await {
            let _ = std::fs::remove_file(target);
            return Err(err.into());
        }
        tracing::info!(target = %target.display(), "SQLite backup written");
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`, waiting up to the busy timeout), so a transaction that reads before it
    /// writes can never fail with `SQLITE_BUSY` halfway; on PostgreSQL it is a plain `BEGIN`.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Runs a filtered listing: `COUNT(*)` over `from` with the builder's conditions for the
    /// total, then one page of `select` in `order`. Both use the same WHERE clause, so the total
    /// never counts rows the page could not show.
    pub(crate) async fn fetch_page<T>(
        &self,
        mut sql: SqlBuilder,
        select: &str,
        from: &str,
        order: &str,
        paging: Paging,
        map: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Page<T>> {
        let where_clause = sql.where_clause();
        let mut count = sql.clone();
        count.push(&format!("SELECT COUNT(*) AS total FROM {from}{where_clause}"));
        let total = count.query().fetch_one(&self.pool).await?.int("total")?;
        let limit = sql.arg(paging.sql_limit());
        let offset = sql.arg(paging.sql_offset());
        sql.push(&format!("SELECT {select} FROM {from}{where_clause} ORDER BY {order} LIMIT {limit} OFFSET {offset}"));
        let rows = sql.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(map).collect::<Result<Vec<T>>>()?;
        Ok(Page { items, total: u64::try_from(total).unwrap_or(0) })
    }

    /// `column` in an ORDER BY that sorts text by code points on both backends (PostgreSQL would
    /// otherwise use the database's locale collation, SQLite always compares bytes).
    pub(crate) fn text_order(&self, column: &str) -> String {
        match self.backend {
            Backend::Sqlite => column.to_owned(),
            Backend::Postgres => format!("{column} COLLATE \"C\""),
        }
    }
}

/// `OpenOptions::mode(0o600)` where the platform has modes.
trait OpenPrivate {
    fn mode_private(&mut self) -> &mut Self;
}

impl OpenPrivate for OpenOptions {
    #[cfg(unix)]
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }

    #[cfg(not(unix))]
    fn mode_private(&mut self) -> &mut Self {
        self
    }
}

/// Creates the database file with mode 0600 unless it exists; an existing file keeps its mode.
fn create_private_file(path: &Path) -> Result<()> {
    match OpenOptions::new().write(true).create_new(true).mode_private().open(path) {
        Ok(_) => {
            #[cfg(unix)]
            {
                // The umask can only remove bits from 0600; set it exactly anyway.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|err| Error::Invalid(format!("cannot set mode 0600 on {}: {err}", path.display())))?;
            }
            tracing::info!(path = %path.display(), "created SQLite database");
            Ok(())
        }
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Error::Invalid(format!("cannot create SQLite database {}: {err}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_connections_use_wal_foreign_keys_normal_sync_and_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pragmas.db");
        let store = Store::connect(&DatabaseConfig::Sqlite { path: path.clone() }).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let mut conn = store.pool.acquire().await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap();
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut *conn).await.unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(journal, "wal");
        assert_eq!(foreign_keys, 1);
        assert_eq!(synchronous, 1, "NORMAL");
        assert_eq!(busy, 5000);
        drop(conn);
        let stats = store.pool_stats();
        assert!(stats.size >= 1 && stats.idle <= stats.size, "{stats:?}");
        store.close().await;
    }

    #[tokio::test]
    async fn a_missing_directory_and_a_foreign_url_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = DatabaseConfig::Sqlite { path: dir.path().join("no/such/dir/x.db") };
        assert!(matches!(Store::connect(&missing).await, Err(Error::Invalid(_))));
        let percent = DatabaseConfig::Sqlite { path: dir.path().join("a%41.db") };
        assert!(matches!(Store::connect(&percent).await, Err(Error::Invalid(_))));
        assert!(!dir.path().join("aA.db").exists() && !dir.path().join("a%41.db").exists());
        let bad_url = DatabaseConfig::Postgres { url: "mysql://localhost/x".into() };
        assert!(matches!(Store::connect(&bad_url).await, Err(Error::Invalid(_))));
    }
}
