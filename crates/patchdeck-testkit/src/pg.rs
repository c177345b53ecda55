//! A throw-away PostgreSQL database per test.
//!
//! [`TestDatabase::create`] connects to the server named by `PATCHDECK_TEST_POSTGRES_URL`
//! (default [`DEFAULT_URL`]), creates a database with a unique name and drops it again when the
//! value is dropped (or earlier, with [`TestDatabase::drop_db`]). An unreachable server is a
//! panic with instructions, never a skipped test: `scripts/test.sh` starts PostgreSQL.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

/// The environment variable naming the server (a URL of a database we may connect to, usually
/// `postgres`, as a role allowed to create databases).
pub const URL_VAR: &str = "PATCHDECK_TEST_POSTGRES_URL";
/// The server used when [`URL_VAR`] is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long connecting, creating or dropping may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh, empty database that is dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates `patchdeck_test_<pid>_<random>` on the test server.
    ///
    /// # Panics
    /// When the server cannot be reached or refuses to create the database; the message says
    /// how to start it.
    pub async fn create() -> TestDatabase {
        let admin_url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let name = format!("patchdeck_test_{}_{:016x}", std::process::id(), random_u64());
        let mut url = url::Url::parse(&admin_url).unwrap_or_else(|err| panic!("{URL_VAR} is not a URL: {err}"));
        url.set_path(&format!("/{name}"));

        let mut conn = connect(&admin_url).await;
        // Tests need no durability: without a flush per commit, write-heavy tests run many
        // times faster. Every other setting is the server's.
        for statement in
            [format!("CREATE DATABASE \"{name}\""), format!("ALTER DATABASE \"{name}\" SET synchronous_commit = off")]
        {
            match tokio::time::timeout(TIMEOUT, conn.execute(statement.as_str())).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => panic!("cannot create test database {name}: {err}"),
                Err(_) => panic!("creating test database {name} took more than {TIMEOUT:?}"),
            }
        }
        let _ = conn.close().await;
        TestDatabase { admin_url, name, url: url.into(), dropped: false }
    }

    /// The URL of the new database (same server, user and options as the admin URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now, terminating connections that are still open.
    pub async fn drop_db(mut self) {
        self.dropped = true;
        if let Err(err) = drop_database(&self.admin_url, &self.name).await {
            eprintln!("warning: could not drop test database {}: {err}", self.name);
        }
    }
}

impl Drop for TestDatabase {
    /// Best effort: drops the database on a helper thread with its own runtime (this may run
    /// inside a tokio runtime, which cannot block on another future), waiting at most
    /// [`TIMEOUT`].
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let (done, wait) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("drop-test-db".into()).spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(drop_database(&admin_url, &name)),
                Err(err) => Err(err.to_string()),
            };
            let _ = done.send(result);
        });
        if spawned.is_err() {
            eprintln!("warning: no thread to drop test database {}", self.name);
            return;
        }
        match wait.recv_timeout(TIMEOUT + Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: could not drop test database {}: {err}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} timed out", self.name),
        }
    }
}

async fn connect(admin_url: &str) -> PgConnection {
    match tokio::time::timeout(TIMEOUT, PgConnection::connect(admin_url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => panic!(
            "PostgreSQL is not reachable for the tests ({err}). Start it (scripts/test.sh does: \
             pg_ctlcluster --skip-systemctl-redirect <version> main start) or point {URL_VAR} at a server \
             where this role may create databases."
        ),
        Err(_) => panic!("connecting to PostgreSQL for the tests took more than {TIMEOUT:?}; is the server up?"),
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let work = async {
        let mut conn = PgConnection::connect(admin_url).await.map_err(|err| err.to_string())?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await
            .map_err(|err| err.to_string())?;
        let _ = conn.close().await;
        Ok(())
    };
    tokio::time::timeout(TIMEOUT, work).await.map_err(|_| format!("timed out after {TIMEOUT:?}"))?
}

/// Unique enough for database names: the std hasher's random keys mixed with the time and a
/// counter.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.finish()
}
