//! A channel's settings: what the API accepts, how each field is checked, and what is stored
//! (the secret separately, sealed).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Why a setting was refused: the field (`settings.host`, …) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct SettingError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> SettingError {
    SettingError { field: field.to_owned(), message: message.into() }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpMode {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (implicit TLS, port 465).
    Tls,
    /// No encryption: only for a relay on this machine (a loopback address).
    None,
}

/// Settings of an SMTP channel. The password is the channel's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The relay's host name or address.
    pub host: String,
    /// Its port (default: 587 for `starttls`, 465 for `tls`, 25 for `none`).
    #[serde(default)]
    pub port: Option<u16>,
    pub mode: SmtpMode,
    /// User name for AUTH (PLAIN or LOGIN); the password is the channel's secret.
    #[serde(default)]
    pub username: Option<String>,
    /// Sender address, e.g. `Patchdeck <patchdeck@example.com>`.
    pub from: String,
    /// Extra CA certificate(s), PEM, trusted besides the public roots (a private relay).
    #[serde(default)]
    pub ca_pem: Option<String>,
}

impl SmtpSettings {
    /// The port in effect.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.mode {
            SmtpMode::Starttls => 587,
            SmtpMode::Tls => 465,
            SmtpMode::None => 25,
        })
    }

    /// Checks every field; `has_password` says whether a password is (or will be) set.
    pub fn check(&mut self, has_password: bool) -> Result<(), SettingError> {
        self.host = self.host.trim().to_owned();
        if self.host.is_empty() || self.host.len() > 253 || self.host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad("settings.host", "must be a host name or IP address"));
        }
        if self.port == Some(0) {
            return Err(bad("settings.port", "must be between 1 and 65535"));
        }
        if self.mode == SmtpMode::None && !is_loopback_host(&self.host) {
            return Err(bad(
                "settings.mode",
                "\"none\" (no encryption) is allowed only for a relay on a loopback address (localhost, 127.0.0.1, ::1); use \"starttls\" or \"tls\"",
            ));
        }
        if let Some(username) = &mut self.username {
            *username = username.trim().to_owned();
            if username.is_empty() || username.len() > 256 || username.chars().any(char::is_control) {
                return Err(bad("settings.username", "must be 1 to 256 printable characters"));
            }
        }
        if self.username.is_some() != has_password {
            return Err(if has_password {
                bad("settings.username", "is required when a password (secret) is set")
            } else {
                bad("secret", "(the SMTP password) is required when settings.username is set")
            });
        }
        self.from = self.from.trim().to_owned();
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(bad("settings.from", "must be an e-mail address, e.g. Patchdeck <patchdeck@example.com>"));
        }
        if let Some(pem) = &self.ca_pem {
            if pem.trim().is_empty() {
                self.ca_pem = None;
            } else {
                let certs = pem_certificates(pem).map_err(|m| bad("settings.ca_pem", m))?;
                if certs.is_empty() {
                    return Err(bad("settings.ca_pem", "holds no PEM certificate"));
                }
            }
        }
        Ok(())
    }
}

/// The DER certificates of a PEM text.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|cert| cert.map(|c| c.to_vec()).map_err(|e| format!("is not valid PEM: {e}")))
        .collect()
}

/// The body a webhook sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{id, event, occurred_at, summary, data}`, signed with HMAC-SHA256.
    Generic,
    /// A Slack incoming webhook: `{"text": …}`.
    Slack,
    /// A Discord webhook: `{"content": …}`.
    Discord,
}

/// Settings of a webhook channel. The signing secret (generic format) is the channel's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `https://…` (`http://` only for a loopback address).
    pub url: String,
    pub format: WebhookFormat,
    /// Extra CA certificate(s), PEM, trusted besides the public roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

impl WebhookSettings {
    /// Checks every field; `has_secret` says whether a signing secret is (or will be) set.
    pub fn check(&mut self, has_secret: bool) -> Result<(), SettingError> {
        self.url = self.url.trim().to_owned();
        let url = url::Url::parse(&self.url).map_err(|e| bad("settings.url", format!("is not a URL: {e}")))?;
        let host = url.host_str().ok_or_else(|| bad("settings.url", "has no host"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(host) => {}
            "http" => return Err(bad("settings.url", "must use https (http only for a loopback address)")),
            other => return Err(bad("settings.url", format!("must use https, not {other}"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("settings.url", "must not carry credentials"));
        }
        if self.format == WebhookFormat::Generic && !has_secret {
            return Err(bad("secret", "(the signing secret) is required for the generic format"));
        }
        if let Some(pem) = &self.ca_pem {
            if pem.trim().is_empty() {
                self.ca_pem = None;
            } else if pem_certificates(pem).map_err(|m| bad("settings.ca_pem", m))?.is_empty() {
                return Err(bad("settings.ca_pem", "holds no PEM certificate"));
            }
        }
        Ok(())
    }
}

/// Whether `host` names this machine: `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks an e-mail recipient; returns it trimmed.
pub fn check_address(address: &str) -> Result<String, String> {
    let address = address.trim();
    match address.parse::<lettre::Address>() {
        Ok(_) if address.len() <= 254 => Ok(address.to_owned()),
        _ => Err(format!("{address:?} is not an e-mail address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(host: &str, mode: SmtpMode) -> SmtpSettings {
        SmtpSettings {
            host: host.into(),
            port: None,
            mode,
            username: None,
            from: "Patchdeck <pd@example.com>".into(),
            ca_pem: None,
        }
    }

    #[test]
    fn plain_smtp_only_on_loopback() {
        assert!(smtp("127.0.0.1", SmtpMode::None).check(false).is_ok());
        assert!(smtp("localhost", SmtpMode::None).check(false).is_ok());
        let err = smtp("mail.example.com", SmtpMode::None).check(false).unwrap_err();
        assert_eq!(err.field, "settings.mode");
        assert!(err.message.contains("loopback"), "{err}");
        assert!(smtp("mail.example.com", SmtpMode::Starttls).check(false).is_ok());
        assert_eq!(smtp("h", SmtpMode::Tls).port(), 465);
    }

    #[test]
    fn smtp_fields_are_checked() {
        let mut s = smtp("h", SmtpMode::Tls);
        s.from = "not an address".into();
        assert_eq!(s.check(false).unwrap_err().field, "settings.from");
        let mut s = smtp("h", SmtpMode::Tls);
        s.username = Some("u".into());
        assert_eq!(s.check(false).unwrap_err().field, "secret");
        assert!(s.check(true).is_ok());
        let mut s = smtp("h", SmtpMode::Tls);
        s.ca_pem = Some("garbage".into());
        assert_eq!(s.check(false).unwrap_err().field, "settings.ca_pem");
    }

    #[test]
    fn webhook_urls_need_https_unless_loopback() {
        let hook = |url: &str| WebhookSettings { url: url.into(), format: WebhookFormat::Slack, ca_pem: None };
        assert!(hook("https://hooks.example.com/x").check(false).is_ok());
        assert!(hook("http://127.0.0.1:9000/x").check(false).is_ok());
        assert!(hook("http://[::1]:9000/x").check(false).is_ok());
        assert_eq!(hook("http://hooks.example.com/x").check(false).unwrap_err().field, "settings.url");
        assert_eq!(hook("ftp://hooks.example.com/x").check(false).unwrap_err().field, "settings.url");
        assert_eq!(hook("https://u:p@hooks.example.com/x").check(false).unwrap_err().field, "settings.url");
        let mut generic = hook("https://hooks.example.com/x");
        generic.format = WebhookFormat::Generic;
        assert_eq!(generic.check(false).unwrap_err().field, "secret");
    }

    #[test]
    fn addresses() {
        assert_eq!(check_address(" ops@example.com ").unwrap(), "ops@example.com");
        assert!(check_address("ops").is_err());
        assert!(check_address("Ops <ops@example.com>").is_err());
    }
}
