//! Typed ids, text enums and paging shared by every resource.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw database id.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map(Self)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }
    )+};
}

id_type! {
    /// Id of a user account.
    UserId;
    /// Id of a group of users and hosts.
    GroupId;
    /// Id of a managed host.
    HostId;
    /// Id of an agent registration token.
    RegistrationTokenId;
    /// Id of a login session.
    SessionId;
    /// Id of a personal API token.
    ApiTokenId;
    /// Id of an issued certificate.
    CertificateId;
    /// Id (and sequence number) of an audit log entry.
    AuditId;
    /// Id of a WebAuthn credential row (not the authenticator's credential id).
    WebauthnCredentialId;
    /// Id of a patch deployment.
    DeploymentId;
    /// Id of a maintenance window.
    MaintenanceWindowId;
    /// Id of a blackout (change-freeze) period.
    BlackoutId;
    /// Id of a notification channel.
    NotificationChannelId;
    /// Id of a notification rule.
    NotificationRuleId;
    /// Id of a notification delivery (outbox row).
    NotificationDeliveryId;
}

/// A stored text value that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    /// The enum, e.g. `role`.
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
}

/// An enum stored as TEXT: the database spelling is the serde spelling.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident ($kind:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored and serialized spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::types::UnknownVariant;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::types::UnknownVariant { kind: $kind, value: text.to_owned() }),
                }
            }
        }
    };
}
pub(crate) use text_enum;

/// One page of a listing and the number of rows that match the same filters (and scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// All matching rows, ignoring limit and offset.
    pub total: u64,
}

/// Largest page a listing returns; larger limits are cut to this.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Limit and offset of a listing. The default is the first 50 rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Rows to return, at most [`MAX_PAGE_SIZE`]; 0 returns only the total.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Self { limit: 50, offset: 0 }
    }
}

impl Paging {
    /// `limit` rows after skipping `offset`.
    pub const fn new(limit: u32, offset: u64) -> Self {
        Self { limit, offset }
    }

    pub(crate) fn sql_limit(self) -> i64 {
        i64::from(self.limit.min(MAX_PAGE_SIZE))
    }

    pub(crate) fn sql_offset(self) -> i64 {
        i64::try_from(self.offset).unwrap_or(i64::MAX)
    }
}

/// Sort direction. The default is ascending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortDir {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

impl SortDir {
    pub(crate) const fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    text_enum! {
        /// Test enum.
        Colour ("colour") {
            /// Red.
            Red = "red",
            /// Dark blue.
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn ids_print_and_parse_as_numbers() {
        let id = HostId(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<HostId>().unwrap(), id);
        assert!("x".parse::<HostId>().is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<HostId>("42").unwrap(), id);
        assert_eq!(i64::from(id), 42);
    }

    #[test]
    fn text_enums_use_one_spelling_everywhere() {
        assert_eq!(Colour::DarkBlue.as_str(), "dark_blue");
        assert_eq!(Colour::DarkBlue.to_string(), "dark_blue");
        assert_eq!(serde_json::to_string(&Colour::DarkBlue).unwrap(), "\"dark_blue\"");
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>().unwrap(), *colour);
        }
        let err = "Red".parse::<Colour>().unwrap_err();
        assert_eq!(err.to_string(), "unknown colour \"Red\"");
    }

    #[test]
    fn paging_is_clamped() {
        assert_eq!(Paging::new(5000, u64::MAX).sql_limit(), i64::from(MAX_PAGE_SIZE));
        assert_eq!(Paging::new(5000, u64::MAX).sql_offset(), i64::MAX);
        assert_eq!(Paging::default().sql_limit(), 50);
    }
}
