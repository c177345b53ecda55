//! Reading role and group claims, which providers put in different places.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::OidcError;

/// The claims of an ID token or userinfo answer that are not standard OIDC claims (roles,
/// groups, `realm_access`, …), kept as JSON for the configured claim paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExtraClaims {
    #[serde(flatten)]
    pub(crate) claims: Map<String, Value>,
}

impl openidconnect::AdditionalClaims for ExtraClaims {}

/// The value at `path` in `claims`: a claim of exactly that name if there is one (namespaced
/// claims such as `https://example.com/roles` contain dots), otherwise the dotted path walked
/// through nested objects.
pub(crate) fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut segments = path.split('.');
    let mut current = claims.get(segments.next()?)?;
    for segment in segments {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

/// The strings of a role or group claim: a string is one value, an array of strings is a list,
/// `null` is none; anything else is a configuration error named after `claim`.
pub(crate) fn string_values(value: &Value, claim: &str) -> Result<Vec<String>, OidcError> {
    let wrong_type = || OidcError::ClaimType { claim: claim.to_owned() };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => {
            items.iter().map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong_type)).collect()
        }
        _ => Err(wrong_type()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn lookup_prefers_the_exact_name_then_walks_the_path() {
        let claims = map(json!({
            "roles": ["a"],
            "realm_access": {"roles": ["b", "c"]},
            "https://pd.example/roles": "d",
            "resource_access": {"patchdeck": {"roles": ["e"]}},
        }));
        assert_eq!(lookup(&claims, "roles"), Some(&json!(["a"])));
        assert_eq!(lookup(&claims, "realm_access.roles"), Some(&json!(["b", "c"])));
        assert_eq!(lookup(&claims, "https://pd.example/roles"), Some(&json!("d")));
        assert_eq!(lookup(&claims, "resource_access.patchdeck.roles"), Some(&json!(["e"])));
        assert_eq!(lookup(&claims, "realm_access.missing"), None);
        assert_eq!(lookup(&claims, "roles.deeper"), None);
        assert_eq!(lookup(&claims, "absent"), None);
    }

    #[test]
    fn string_values_accepts_strings_and_arrays_only() {
        assert_eq!(string_values(&json!("x"), "c").unwrap(), ["x"]);
        assert_eq!(string_values(&json!(["x", "y"]), "c").unwrap(), ["x", "y"]);
        assert!(string_values(&Value::Null, "c").unwrap().is_empty());
        for bad in [json!({"roles": []}), json!(3), json!(["x", 1]), json!(true)] {
            match string_values(&bad, "realm_access") {
                Err(OidcError::ClaimType { claim }) => assert_eq!(claim, "realm_access"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn extra_claims_keep_nested_values() {
        let parsed: ExtraClaims = serde_json::from_value(json!({"groups": ["g"], "n": {"k": 1}})).unwrap();
        assert_eq!(lookup(&parsed.claims, "n.k"), Some(&json!(1)));
        assert_eq!(lookup(&parsed.claims, "groups"), Some(&json!(["g"])));
    }
}
