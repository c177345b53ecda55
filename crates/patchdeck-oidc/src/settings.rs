//! What an administrator configures: the provider, this client's registration and how claims map
//! to Patchdeck roles.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::OidcError;

/// A role of the manager, as granted by the provider's claims. The manager converts it to its
/// own role type. Ordered by power: `Viewer < Operator < Admin`, so the highest one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MappedRole {
    /// Sees hosts, packages and jobs.
    Viewer,
    /// Also runs jobs.
    Operator,
    /// Also manages settings and users.
    Admin,
}

impl MappedRole {
    /// The lower-case name (`admin`, `operator`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            MappedRole::Viewer => "viewer",
            MappedRole::Operator => "operator",
            MappedRole::Admin => "admin",
        }
    }
}

impl fmt::Display for MappedRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which values of the role claim grant each role. A value may be listed under several roles;
/// the highest matching role wins. Matching is exact and case-sensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleMap {
    /// Claim values that grant [`MappedRole::Admin`].
    pub admin: Vec<String>,
    /// Claim values that grant [`MappedRole::Operator`].
    pub operator: Vec<String>,
    /// Claim values that grant [`MappedRole::Viewer`].
    pub viewer: Vec<String>,
}

impl RoleMap {
    /// The highest role that any of `values` grants, if one does.
    pub fn highest<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Option<MappedRole> {
        let grants = |list: &[String], value: &str| list.iter().any(|granted| granted == value);
        values
            .into_iter()
            .filter_map(|value| {
                if grants(&self.admin, value) {
                    Some(MappedRole::Admin)
                } else if grants(&self.operator, value) {
                    Some(MappedRole::Operator)
                } else if grants(&self.viewer, value) {
                    Some(MappedRole::Viewer)
                } else {
                    None
                }
            })
            .max()
    }
}

/// The client secret the provider issued to the manager. Kept out of [`OidcSettings`] (the manager
/// stores it encrypted, apart from the JSON settings) and never printed: `Debug` shows
/// `Secret([redacted])`, and it implements neither `Display` nor `Serialize`.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> ClientSecret {
        ClientSecret(secret.into())
    }

    /// The secret itself, for the token request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// The OpenID Connect settings of the manager, stored as one JSON setting.
///
/// The client secret is not part of it: it is passed separately to
/// [`OidcClient::discover`](crate::OidcClient::discover) as a [`ClientSecret`], so a settings
/// document can be shown, exported and logged without leaking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer identifier, exactly as the provider spells it in its discovery document and
    /// ID tokens (`https://id.example.com/realms/main`; a trailing slash matters). Discovery reads
    /// `<issuer_url>/.well-known/openid-configuration`.
    pub issuer_url: String,
    /// The client ID registered at the provider.
    pub client_id: String,
    /// The manager's callback URL, registered at the provider; the browser comes back there with
    /// `code` and `state`.
    pub redirect_url: String,
    /// Scopes to request (default `openid profile email`); `openid` is always requested.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim whose values [`role_map`](Self::role_map) maps to roles (default `roles`). A
    /// claim of that exact name is read first; otherwise a dotted path walks nested objects
    /// (`realm_access.roles`, `resource_access.patchdeck.roles`). Its value is a string or an
    /// array of strings. To grant roles by group membership, set this to the group claim.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The claim listing the user's groups (default `groups`); same syntax as `role_claim`.
    #[serde(default = "default_group_claim")]
    pub group_claim: String,
    /// Which claim values grant which role.
    #[serde(default)]
    pub role_map: RoleMap,
    /// The role of a user whom no claim value maps to a role; `None` (the default) refuses them.
    #[serde(default)]
    pub default_role: Option<MappedRole>,
    /// How long a started login may take before its callback is refused, in seconds (default 600).
    #[serde(default = "default_login_timeout_secs")]
    pub login_timeout_secs: u64,
    /// Accept an `http://` issuer and endpoints. Only for tests and development: over plain HTTP
    /// the client secret, the code and the tokens travel in clear. Default `false`.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

fn default_role_claim() -> String {
    "roles".to_owned()
}

fn default_group_claim() -> String {
    "groups".to_owned()
}

fn default_login_timeout_secs() -> u64 {
    600
}

impl OidcSettings {
    /// Settings for `issuer_url`, `client_id` and `redirect_url`, everything else at its default.
    pub fn new(issuer_url: impl Into<String>, client_id: impl Into<String>, redirect_url: impl Into<String>) -> Self {
        OidcSettings {
            issuer_url: issuer_url.into(),
            client_id: client_id.into(),
            redirect_url: redirect_url.into(),
            scopes: default_scopes(),
            role_claim: default_role_claim(),
            group_claim: default_group_claim(),
            role_map: RoleMap::default(),
            default_role: None,
            login_timeout_secs: default_login_timeout_secs(),
            allow_insecure_http: false,
        }
    }

    /// How long a started login stays valid.
    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout_secs)
    }

    /// Checks every field; the first problem is returned, naming the field.
    pub fn validate(&self) -> Result<(), OidcError> {
        let issuer = parse_url("issuer_url", &self.issuer_url)?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(invalid("issuer_url", "must have no query or fragment"));
        }
        self.require_https("issuer_url", &issuer, &self.issuer_url)?;
        let redirect = parse_url("redirect_url", &self.redirect_url)?;
        if redirect.fragment().is_some() {
            return Err(invalid("redirect_url", "must have no fragment"));
        }
        self.require_https("redirect_url", &redirect, &self.redirect_url)?;
        if self.client_id.is_empty() {
            return Err(invalid("client_id", "must not be empty"));
        }
        if let Some(scope) = self.scopes.iter().find(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            return Err(invalid("scopes", format!("`{scope}` is not a single scope")));
        }
        check_claim_path("role_claim", &self.role_claim)?;
        check_claim_path("group_claim", &self.group_claim)?;
        if self.login_timeout_secs == 0 {
            return Err(invalid("login_timeout_secs", "must be at least 1"));
        }
        Ok(())
    }

    /// Refuses a non-HTTPS `url` (spelled `shown` in errors) unless
    /// [`allow_insecure_http`](Self::allow_insecure_http) is set.
    pub(crate) fn require_https(&self, what: &'static str, url: &Url, shown: &str) -> Result<(), OidcError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_insecure_http => Ok(()),
            "http" => Err(OidcError::InsecureUrl { what, url: shown.to_owned() }),
            other => Err(invalid(what, format!("scheme `{other}` is neither https nor http"))),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> OidcError {
    OidcError::InvalidSettings { field, reason: reason.into() }
}

fn parse_url(field: &'static str, text: &str) -> Result<Url, OidcError> {
    let url = Url::parse(text).map_err(|e| invalid(field, format!("`{text}` is not a URL: {e}")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, format!("`{text}` has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(field, "must not contain credentials"));
    }
    Ok(url)
}

fn check_claim_path(field: &'static str, path: &str) -> Result<(), OidcError> {
    if path.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if path.split('.').any(str::is_empty) {
        return Err(invalid(field, format!("`{path}` has an empty path segment")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings::new("https://id.example.com", "patchdeck", "https://patchdeck.example.com/auth/oidc/callback")
    }

    #[test]
    fn defaults_from_minimal_json() {
        let json = r#"{"issuer_url":"https://id.example.com","client_id":"pd","redirect_url":"https://pd.example/cb"}"#;
        let parsed: OidcSettings = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.scopes, ["openid", "profile", "email"]);
        assert_eq!(parsed.role_claim, "roles");
        assert_eq!(parsed.group_claim, "groups");
        assert_eq!(parsed.default_role, None);
        assert_eq!(parsed.login_timeout(), Duration::from_secs(600));
        assert!(!parsed.allow_insecure_http);
        parsed.validate().unwrap();
    }

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let mut s = settings();
        s.role_map.admin = vec!["pd-admins".into()];
        s.default_role = Some(MappedRole::Viewer);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""default_role":"viewer""#), "{json}");
        assert_eq!(serde_json::from_str::<OidcSettings>(&json).unwrap(), s);
        let err = serde_json::from_str::<OidcSettings>(&json.replace("client_id", "client_ID")).unwrap_err();
        assert!(err.to_string().contains("client_ID"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        type Mutation = fn(&mut OidcSettings);
        let cases: [(Mutation, &str); 8] = [
            (|s| s.issuer_url = "not a url".into(), "issuer_url"),
            (|s| s.issuer_url = "https://id.example.com/?x=1".into(), "issuer_url"),
            (|s| s.issuer_url = "ftp://id.example.com".into(), "issuer_url"),
            (|s| s.redirect_url = "https://user:pw@pd.example/cb".into(), "redirect_url"),
            (|s| s.client_id.clear(), "client_id"),
            (|s| s.scopes.push("two words".into()), "scopes"),
            (|s| s.role_claim = "realm_access..roles".into(), "role_claim"),
            (|s| s.login_timeout_secs = 0, "login_timeout_secs"),
        ];
        for (mutate, field) in cases {
            let mut s = settings();
            mutate(&mut s);
            match s.validate() {
                Err(OidcError::InvalidSettings { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected InvalidSettings, got {other:?}"),
            }
        }
    }

    #[test]
    fn http_needs_the_flag() {
        let mut s = settings();
        s.issuer_url = "http://id.example.com".into();
        assert!(matches!(s.validate(), Err(OidcError::InsecureUrl { what: "issuer_url", .. })));
        s.allow_insecure_http = true;
        s.validate().unwrap();
    }

    #[test]
    fn highest_role_wins() {
        let map = RoleMap {
            admin: vec!["root".into()],
            operator: vec!["ops".into(), "root".into()],
            viewer: vec!["staff".into()],
        };
        assert_eq!(map.highest(["staff", "ops"]), Some(MappedRole::Operator));
        assert_eq!(map.highest(["root", "staff"]), Some(MappedRole::Admin));
        assert_eq!(map.highest(["Staff", "other"]), None);
        assert_eq!(map.highest([]), None);
        assert!(MappedRole::Viewer < MappedRole::Operator && MappedRole::Operator < MappedRole::Admin);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = ClientSecret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
        assert_eq!(secret.expose(), "hunter2");
    }
}
