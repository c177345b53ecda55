//! Where the database is and how many connections to keep.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::Backend;

/// Which database to open. `Debug` hides a password in a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// Embedded SQLite in one file (created with mode 0600 when missing).
    Sqlite {
        /// The database file; its directory must exist.
        path: PathBuf,
    },
    /// A PostgreSQL server, e.g. `postgres://patchdeck:secret@db.example/patchdeck`.
    Postgres {
        /// A `postgres://` or `postgresql://` URL.
        url: String,
    },
}

impl DatabaseConfig {
    /// The backend this configuration opens.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite { .. } => Backend::Sqlite,
            Self::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A printable description: the file path, or the URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite:{}", path.display()),
            Self::Postgres { url } => redact_url(url),
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres { url } => f.debug_struct("Postgres").field("url", &redact_url(url)).finish(),
        }
    }
}

/// Query parameters of a libpq URL that carry secrets.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// Replaces the password in the user-info part and in `password=` parameters with `***`.
/// A URL that does not parse is not printed at all.
fn redact_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return "[unparsable URL, not shown]".to_owned();
    };
    if url.password().is_some() {
        // Only fails for URLs that cannot have credentials, which a parsed password rules out.
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if SECRET_PARAMS.contains(&key.as_ref()) { "***".to_owned() } else { value.into_owned() };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// Pool settings. [`Default`] suits one manager process; raise `max_connections` for PostgreSQL
/// when several replicas and workers share it only if the server allows that many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Largest PostgreSQL pool (default 10).
    pub max_connections: u32,
    /// Largest SQLite pool (default 4). SQLite writes one at a time; more connections only help
    /// concurrent readers.
    pub sqlite_max_connections: u32,
    /// How long a query waits for a free connection before it fails (default 10 s).
    pub acquire_timeout: Duration,
    /// How long SQLite waits for another writer's lock before `SQLITE_BUSY` (default 5 s).
    pub sqlite_busy_timeout: Duration,
    /// Audit entries read per query while verifying the chain (default 500): memory use of
    /// [`crate::Store::verify_audit_chain`] is bounded by this, not by the size of the log.
    pub audit_verify_batch: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            sqlite_max_connections: 4,
            acquire_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(5),
            audit_verify_batch: 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_postgres_passwords() {
        let config = DatabaseConfig::Postgres {
            url: "postgres://patchdeck:s3cret@db.example:5432/patchdeck?sslmode=require&password=other".into(),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("other"), "{shown}");
        assert!(shown.contains("patchdeck:***@db.example:5432/patchdeck"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        assert_eq!(config.backend(), Backend::Postgres);

        let no_password = DatabaseConfig::Postgres { url: "postgres://postgres@127.0.0.1/db".into() };
        assert_eq!(no_password.redacted(), "postgres://postgres@127.0.0.1/db");
        let garbage = DatabaseConfig::Postgres { url: "not a url with secret".into() };
        assert!(!format!("{garbage:?}").contains("secret"));
    }

    #[test]
    fn sqlite_config_shows_its_path() {
        let config = DatabaseConfig::Sqlite { path: "/var/lib/patchdeck/patchdeck.db".into() };
        assert_eq!(config.redacted(), "sqlite:/var/lib/patchdeck/patchdeck.db");
        assert!(format!("{config:?}").contains("/var/lib/patchdeck/patchdeck.db"));
        assert_eq!(config.backend(), Backend::Sqlite);
    }
}
