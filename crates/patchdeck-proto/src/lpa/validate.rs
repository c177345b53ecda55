//! Input rules of the contract (upstream SECURITY.md, reference §2.5) and the
//! one way a request body becomes a typed request: [`parse_request`].
//!
//! Every error names the field it is about, as a path (`packages[2].name`),
//! so the server can answer `400 VALIDATION_ERROR` with a message a person
//! can act on. These checks are the first gate only: a name still goes
//! through `patchdeck_pkg::PackageName::parse` before it reaches a command.

use std::fmt;

use serde::de::DeserializeOwned;

/// Longest package name, version or service name accepted (characters).
pub const MAX_NAME_LEN: usize = 256;
/// Most items accepted in one list (package specs, patch names).
pub const MAX_LIST_LEN: usize = 1000;
/// Longest delay accepted for a reboot, in seconds (one day).
pub const MAX_DELAY_SECONDS: u64 = 86_400;
/// Longest free-text reboot `reason`, in characters.
pub const MAX_REASON_LEN: usize = 256;

/// A request that was well-formed JSON but broke a rule, or was not the
/// expected shape. `field` is a path into the request (`packages[2].name`,
/// `options.force`), or `body` when the problem is the body as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where the problem is, e.g. `packages[2].name`.
    pub field: String,
    /// What is wrong, e.g. `must start with a letter or digit`.
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// A request type with rules beyond its shape (§2.5).
pub trait Validate {
    /// Checks every rule; the first broken one is returned.
    fn validate(&self) -> Result<(), ValidationError>;
}

/// Parses a JSON request body into `T` and validates it.
///
/// Unknown fields (every request type denies them), missing fields and
/// wrongly typed values all come back as a [`ValidationError`] whose `field`
/// is the path of the offending value, e.g. `options.forse` or
/// `packages[0].name`. The server maps it to `400 VALIDATION_ERROR`.
pub fn parse_request<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ValidationError> {
    let request: T = parse_json(body)?;
    request.validate()?;
    Ok(request)
}

/// Parses JSON into `T` with a field-naming error, without running
/// [`Validate`]. Used for WebSocket client messages and by [`parse_request`].
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ValidationError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner);
        if inner.is_syntax() || inner.is_eof() {
            let at = format!("invalid JSON at line {} column {}: {message}", inner.line(), inner.column());
            return ValidationError::new("body", at);
        }
        field_error(&path, message)
    })?;
    de.end().map_err(|e| {
        ValidationError::new("body", format!("trailing data after the JSON value: {}", strip_position(&e)))
    })?;
    Ok(value)
}

/// Parses a URL query string (without the `?`) into `T` and validates it,
/// with the same field-naming errors as [`parse_request`]: `limit=abc`
/// fails as `limit: invalid digit found in string`, `sortt=name` as
/// `sortt: unknown field ...`. An empty string gives every default.
pub fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ValidationError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    let request: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        field_error(&path, e.into_inner().to_string())
    })?;
    request.validate()?;
    Ok(request)
}

/// Turns a serde path and message into a field error. Unknown-field errors
/// raised at the root get the unknown key as their field, so the field is
/// never the uninformative `.`.
fn field_error(path: &str, message: String) -> ValidationError {
    let at_root = path.is_empty() || path == ".";
    if let Some(key) = backticked_after(&message, "unknown field `") {
        let field = if at_root {
            key.to_owned()
        } else if path.ends_with(key) {
            path.to_owned()
        } else {
            format!("{path}.{key}")
        };
        return ValidationError::new(field, message);
    }
    if let Some(key) = backticked_after(&message, "missing field `") {
        let field = if at_root { key.to_owned() } else { format!("{path}.{key}") };
        return ValidationError::new(field, message);
    }
    ValidationError::new(if at_root { "body".to_owned() } else { path.to_owned() }, message)
}

fn backticked_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// serde_json appends ` at line L column C`; the path already says where.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => text,
    }
}

/// What kind of identifier is being checked: decides the allowed characters.
#[derive(Debug, Clone, Copy)]
enum Kind {
    PackageName,
    Version,
    ServiceName,
    NameGlob,
}

impl Kind {
    fn allows(self, c: char) -> bool {
        c.is_ascii_alphanumeric()
            || match self {
                Kind::PackageName => matches!(c, '+' | '.' | '_' | '-'),
                // `^` appears in rpm versions (`1.0^git1`); `:` epochs; `~` pre-releases.
                Kind::Version => matches!(c, '+' | '.' | ':' | '~' | '_' | '-' | '^'),
                Kind::ServiceName => matches!(c, '_' | '.' | '@' | '+' | '-'),
                Kind::NameGlob => matches!(c, '+' | '.' | '_' | '-' | '*'),
            }
    }

    fn allowed_text(self) -> &'static str {
        match self {
            Kind::PackageName => "letters, digits and + . _ -",
            Kind::Version => "letters, digits and + . : ~ _ - ^",
            Kind::ServiceName => "letters, digits and _ . @ + -",
            Kind::NameGlob => "letters, digits, + . _ - and the wildcard *",
        }
    }
}

fn check(field: &str, value: &str, kind: Kind) -> Result<(), ValidationError> {
    let err = |message: String| Err(ValidationError::new(field, message));
    let Some(first) = value.chars().next() else {
        return err("must not be empty".into());
    };
    let len = value.chars().count();
    if len > MAX_NAME_LEN {
        return err(format!("must be at most {MAX_NAME_LEN} characters (got {len})"));
    }
    let first_ok = match kind {
        Kind::NameGlob => first.is_ascii_alphanumeric() || first == '*',
        _ => first.is_ascii_alphanumeric(),
    };
    if !first_ok {
        return err(format!("must start with a letter or digit (got {first:?})"));
    }
    if value.contains("..") {
        return err("must not contain `..`".into());
    }
    if let Some(bad) = value.chars().find(|&c| !kind.allows(c)) {
        return err(format!("contains {bad:?}; allowed are {}", kind.allowed_text()));
    }
    Ok(())
}

/// Package name: `^[a-zA-Z0-9][a-zA-Z0-9+._-]*$`, at most 256 characters, no `..`.
pub fn validate_package_name(field: &str, name: &str) -> Result<(), ValidationError> {
    check(field, name, Kind::PackageName)
}

/// Version: `^[a-zA-Z0-9][a-zA-Z0-9+.:~_^-]*$` (upstream's rule plus rpm's
/// `^`), at most 256 characters, no `..`.
pub fn validate_version(field: &str, version: &str) -> Result<(), ValidationError> {
    check(field, version, Kind::Version)
}

/// Service name (`GET /system/services/{name}`): `^[a-zA-Z0-9][a-zA-Z0-9_.@+-]*$`,
/// at most 256 characters, no `..`.
pub fn validate_service_name(field: &str, name: &str) -> Result<(), ValidationError> {
    check(field, name, Kind::ServiceName)
}

/// The `name` filter of `GET /packages`: package-name characters plus `*`
/// (any run of characters), which may also come first.
pub fn validate_name_glob(field: &str, pattern: &str) -> Result<(), ValidationError> {
    check(field, pattern, Kind::NameGlob)
}

/// Checks a list's length: at most [`MAX_LIST_LEN`] items and, if
/// `non_empty`, at least one.
pub fn validate_list_len(field: &str, len: usize, non_empty: bool) -> Result<(), ValidationError> {
    if non_empty && len == 0 {
        return Err(ValidationError::new(field, "must list at least one item"));
    }
    if len > MAX_LIST_LEN {
        return Err(ValidationError::new(field, format!("must list at most {MAX_LIST_LEN} items (got {len})")));
    }
    Ok(())
}

/// Checks a delay in seconds against [`MAX_DELAY_SECONDS`].
pub fn validate_delay(field: &str, seconds: u64) -> Result<(), ValidationError> {
    if seconds > MAX_DELAY_SECONDS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_DELAY_SECONDS} seconds (got {seconds})"),
        ));
    }
    Ok(())
}

/// Checks a `limit` query parameter: 1 to `max`.
pub fn validate_limit(field: &str, limit: u32, max: u32) -> Result<(), ValidationError> {
    if limit == 0 || limit > max {
        return Err(ValidationError::new(field, format!("must be between 1 and {max} (got {limit})")));
    }
    Ok(())
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters (possibly empty) and everything else matches itself. Used for
/// the `name` filter of `GET /packages`.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative wildcard match with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A request type that must arrive as a JSON object. serde's derive also
/// accepts a struct as an array of its field values (`[[...], null]`); a
/// strict request must not, so these types deserialise through
/// `deserialize_map` only. Implemented by [`object_only!`].
pub(crate) trait ObjectOnly: Sized {
    /// What the error says was expected, e.g. `an install request object`.
    const EXPECTING: &'static str;
    /// Builds the value from the object's entries (the derived code).
    fn from_map<'de, A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Deserialises `T` from a JSON object only.
pub(crate) fn deserialize_object<'de, D: serde::Deserializer<'de>, T: ObjectOnly>(d: D) -> Result<T, D::Error> {
    struct ObjectVisitor<T>(std::marker::PhantomData<T>);
    impl<'de, T: ObjectOnly> serde::de::Visitor<'de> for ObjectVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::from_map(map)
        }
    }
    d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
}

/// For a type whose serde derive carries `#[serde(remote = "Self")]`: the
/// `Serialize` impl, and a `Deserialize` impl that takes JSON objects only.
macro_rules! object_only {
    ($ty:ident, $expecting:literal) => {
        impl $crate::lpa::validate::ObjectOnly for $ty {
            const EXPECTING: &'static str = $expecting;
            fn from_map<'de, A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
                $ty::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::lpa::validate::deserialize_object(deserializer)
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $ty::serialize(self, serializer)
            }
        }
    };
}
pub(crate) use object_only;
