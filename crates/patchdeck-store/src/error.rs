//! The one error type of the store, and how database errors are classified into it.

/// Result of every store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the store.
///
/// Messages never contain secrets, token or password hashes, or the values that collided: a
/// conflict names the field (`username already exists`), not the row.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named thing (`"user"`, `"host"`, …) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The write collides with existing data: a duplicate unique value ("username already
    /// exists") or a state change that already happened ("certificate already revoked").
    #[error("{0}")]
    Conflict(String),
    /// A row refers to something that does not exist (a foreign-key violation): adding a user to
    /// a group that was deleted, a session for a missing user.
    #[error("the referenced {0} does not exist")]
    MissingReference(&'static str),
    /// An argument the store cannot represent: an empty name, a malformed serial, a duration so
    /// long that the expiry overflows.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The operation does not exist on this backend (e.g. online backup of PostgreSQL).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A stored value the code cannot read back (an unknown enum text, a timestamp out of range):
    /// the database was edited outside Patchdeck or by a newer version.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Any other database error (connection, I/O, timeout, syntax).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying the migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        classify(err, &[], "record")
    }
}

/// Maps unique and foreign-key violations to [`Error::Conflict`] and [`Error::MissingReference`].
///
/// `uniques` pairs a needle with the field it stands for: the needle is looked for in the
/// violated constraint's name (PostgreSQL: `users_username_key`) or in SQLite's message
/// (`UNIQUE constraint failed: users.username`), so one needle serves both backends. `reference`
/// names what a foreign key pointed at.
pub(crate) fn classify(err: sqlx::Error, uniques: &[(&str, &str)], reference: &'static str) -> Error {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let target = db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned());
            let field = uniques
                .iter()
                .find(|(needle, _)| target.contains(needle))
                .map(|(_, field)| *field)
                .unwrap_or("a record with the same unique value");
            return Error::Conflict(format!("{field} already exists"));
        }
        if db.is_foreign_key_violation() {
            return Error::MissingReference(reference);
        }
    }
    Error::Database(err)
}

/// Extension to classify `sqlx` results at the call site.
pub(crate) trait ResultExt<T> {
    /// See [`classify`].
    fn classify(self, uniques: &[(&str, &str)], reference: &'static str) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn classify(self, uniques: &[(&str, &str)], reference: &'static str) -> Result<T> {
        self.map_err(|err| classify(err, uniques, reference))
    }
}
