//! E-mail over SMTP with lettre (rustls, tokio): STARTTLS (required, never opportunistic),
//! implicit TLS, or plain only to a loopback relay; AUTH PLAIN or LOGIN when a user name is set.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::{pem_certificates, SmtpMode, SmtpSettings};
use super::SendError;

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one plain-text message to `recipients`.
pub async fn send(
    settings: &SmtpSettings,
    password: Option<&str>,
    recipients: &[String],
    subject: &str,
    body: &str,
) -> Result<(), SendError> {
    if recipients.is_empty() {
        return Err(SendError::Permanent("no recipients".into()));
    }
    let from: Mailbox =
        settings.from.parse().map_err(|e| SendError::Permanent(format!("sender address {:?}: {e}", settings.from)))?;
    let mut message = Message::builder().from(from).subject(subject).header(ContentType::TEXT_PLAIN);
    for to in recipients {
        let to: Mailbox = to.parse().map_err(|e| SendError::Permanent(format!("recipient {to:?}: {e}")))?;
        message = message.to(to);
    }
    let message = message
        .body(body.to_owned())
        .map_err(|e| SendError::Permanent(format!("the message could not be built: {e}")))?;

    let tls = match settings.mode {
        SmtpMode::None => Tls::None,
        SmtpMode::Starttls => Tls::Required(tls_parameters(settings)?),
        SmtpMode::Tls => Tls::Wrapper(tls_parameters(settings)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
        .port(settings.port())
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if let Some(username) = &settings.username {
        let password = password.ok_or_else(|| SendError::Permanent("the SMTP password is not set".into()))?;
        builder = builder
            .credentials(Credentials::new(username.clone(), password.to_owned()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    let transport = builder.build();
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("the SMTP server refused: {}", describe(&e)))),
        Err(e) => {
            Err(SendError::Retry(format!("sending to {}:{} failed: {}", settings.host, settings.port(), describe(&e))))
        }
    }
}

fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(pem) = &settings.ca_pem {
        for der in pem_certificates(pem).map_err(|e| SendError::Permanent(format!("settings.ca_pem {e}")))? {
            let cert = Certificate::from_der(der)
                .map_err(|e| SendError::Permanent(format!("settings.ca_pem is not a usable certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build_rustls().map_err(|e| SendError::Permanent(format!("TLS settings: {}", describe(&e))))
}

/// The error and its causes on one line.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
