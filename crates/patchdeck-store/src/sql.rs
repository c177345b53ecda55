//! Helpers shared by the query modules: reading typed values out of `AnyRow`s, converting
//! timestamps, and building queries whose WHERE clause depends on a filter.

use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::error::{Error, Result};

/// A timestamp as stored: Unix milliseconds (sub-millisecond precision is dropped).
pub(crate) fn ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

/// `ts + duration` in stored milliseconds; an overflow is the caller's mistake.
pub(crate) fn ms_after(ts: Timestamp, duration: SignedDuration) -> Result<i64> {
    ts.checked_add(duration).map(ms).map_err(|_| Error::Invalid(format!("{ts} plus {duration} is out of range")))
}

fn to_timestamp(value: i64, column: &str) -> Result<Timestamp> {
    Timestamp::from_millisecond(value)
        .map_err(|_| Error::Corrupt(format!("column {column} holds {value}, not a timestamp in milliseconds")))
}

/// Typed access to the columns of a row, with errors that name the column.
pub(crate) trait RowExt {
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn blob(&self, column: &str) -> Result<Vec<u8>>;
    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>>;

    /// A timestamp stored as Unix milliseconds.
    fn ts(&self, column: &str) -> Result<Timestamp> {
        to_timestamp(self.int(column)?, column)
    }

    fn opt_ts(&self, column: &str) -> Result<Option<Timestamp>> {
        self.opt_int(column)?.map(|value| to_timestamp(value, column)).transpose()
    }

    /// A boolean stored as 0 or 1.
    fn flag(&self, column: &str) -> Result<bool> {
        match self.int(column)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Error::Corrupt(format!("column {column} holds {other}, not 0 or 1"))),
        }
    }

    /// A non-negative count that fits a `u32`.
    fn count(&self, column: &str) -> Result<u32> {
        let value = self.int(column)?;
        u32::try_from(value).map_err(|_| Error::Corrupt(format!("column {column} holds {value}, not a count")))
    }

    /// A text enum (see `text_enum!`).
    fn parse<T: FromStr>(&self, column: &str) -> Result<T> {
        let text = self.text(column)?;
        text.parse().map_err(|_| Error::Corrupt(format!("column {column} holds unknown value {text:?}")))
    }

    /// A value stored as JSON text.
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        from_json(&self.text(column)?, column)
    }

    /// A value stored as JSON text, or NULL.
    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>> {
        self.opt_text(column)?.map(|text| from_json(&text, column)).transpose()
    }
}

fn from_json<T: DeserializeOwned>(text: &str, column: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|err| Error::Corrupt(format!("column {column} holds unreadable JSON: {err}")))
}

/// A value as JSON text, for a TEXT column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|err| Error::Invalid(format!("{what} cannot be stored as JSON: {err}")))
}

impl RowExt for AnyRow {
    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn blob(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }

    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

/// `c.id AS cert_id, c.serial AS cert_serial, …` from `id, serial, …`: the columns of one side of
/// a join under names of their own, read back through [`Prefixed`] by the same mapping function
/// that reads the table alone.
pub(crate) fn aliased(table: &str, prefix: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|column| {
            let column = column.trim();
            format!("{table}.{column} AS {prefix}{column}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row seen through a column-name prefix: `Prefixed(row, "cert_").int("id")` reads `cert_id`.
/// Lets a row mapper written for one table read that table's columns out of a join
/// (see [`aliased`]).
pub(crate) struct Prefixed<'a>(pub(crate) &'a AnyRow, pub(crate) &'a str);

impl Prefixed<'_> {
    fn name(&self, column: &str) -> String {
        format!("{}{column}", self.1)
    }
}

impl RowExt for Prefixed<'_> {
    fn int(&self, column: &str) -> Result<i64> {
        self.0.int(&self.name(column))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        self.0.opt_int(&self.name(column))
    }

    fn text(&self, column: &str) -> Result<String> {
        self.0.text(&self.name(column))
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        self.0.opt_text(&self.name(column))
    }

    fn blob(&self, column: &str) -> Result<Vec<u8>> {
        self.0.blob(&self.name(column))
    }

    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>> {
        self.0.opt_blob(&self.name(column))
    }
}

/// `u.id, u.username, …` from `id, username, …`: for joins where column names would clash.
pub(crate) fn prefixed(prefix: &str, columns: &str) -> String {
    columns.split(',').map(|column| format!("{prefix}.{}", column.trim())).collect::<Vec<_>>().join(", ")
}

/// Turns user text into a `LIKE … ESCAPE '\'` pattern matching it as a lower-case substring:
/// `%`, `_` and `\` in the text match only themselves.
pub(crate) fn contains_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A value bound to a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<Vec<u8>> for Arg {
    fn from(value: Vec<u8>) -> Self {
        Self::Blob(Some(value))
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}

/// A query whose text grows with the filter. [`Self::arg`] appends a value and returns its
/// `$N` placeholder, so text and arguments never get out of step.
#[derive(Debug, Clone, Default)]
pub(crate) struct SqlBuilder {
    sql: String,
    args: Vec<Arg>,
    conditions: Vec<String>,
}

impl SqlBuilder {
    /// Binds a value and returns its placeholder.
    pub(crate) fn arg(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// Adds a condition to the WHERE clause (joined with AND).
    pub(crate) fn condition(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// ` WHERE a AND b`, or nothing without conditions.
    pub(crate) fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// Appends raw SQL text.
    pub(crate) fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// A query over [`Self::sql`] with every bound argument.
    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.sql);
        for arg in &self.args {
            query = match arg {
                Arg::Int(value) => query.bind(*value),
                Arg::Text(value) => query.bind(value.as_deref()),
                Arg::Blob(value) => query.bind(value.as_deref()),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_columns() {
        assert_eq!(prefixed("u", "id, name,\n  created_at"), "u.id, u.name, u.created_at");
    }

    #[test]
    fn aliased_columns() {
        assert_eq!(
            aliased("c", "cert_", "id, serial,\n  created_at"),
            "c.id AS cert_id, c.serial AS cert_serial, c.created_at AS cert_created_at"
        );
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Web_1"), "%web\\_1%");
        assert_eq!(contains_pattern("100%"), "%100\\%%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
    }

    #[test]
    fn builder_numbers_placeholders_in_order() {
        let mut sql = SqlBuilder::default();
        let a = sql.arg(1_i64);
        let b = sql.arg("x");
        sql.condition(format!("a = {a}"));
        sql.condition(format!("b = {b}"));
        assert_eq!(sql.where_clause(), " WHERE a = $1 AND b = $2");
        assert_eq!(SqlBuilder::default().where_clause(), "");
    }

    #[test]
    fn durations_that_overflow_are_invalid() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(ms_after(now, SignedDuration::from_secs(1)).unwrap(), 1_700_000_001_000);
        assert!(matches!(ms_after(now, SignedDuration::MAX), Err(Error::Invalid(_))));
    }
}
