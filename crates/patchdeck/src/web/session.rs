//! Starting, refreshing and ending browser sessions.
//!
//! A session is a row in the store plus a chain of single-use refresh tokens (stored hashed).
//! Each refresh rotates the token; presenting an already-used one means it was stolen or
//! replayed, and the store revokes the whole session. The browser holds the tokens only in
//! cookies (see [`super::cookies`]).

use axum::http::HeaderMap;
use data_encoding::BASE64URL_NOPAD;
use jiff::SignedDuration;
use patchdeck_crypto::token::{self as jwt, AccessClaims, OpaqueToken};
use patchdeck_store::{NewSession, SessionId, User};

use super::cookies;
use super::error::ApiError;
use crate::state::AppState;

/// The refresh token prefix (`pdk_rt_…`).
pub const REFRESH_PREFIX: &str = "rt";

/// What the client learns about a new session.
#[derive(Debug)]
pub struct Issued {
    pub session_id: SessionId,
    /// `Set-Cookie` headers.
    pub headers: HeaderMap,
}

fn lifetime(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Opens a session for `user` (who passed every required factor) and sets its cookies.
pub async fn start(
    state: &AppState,
    user: &User,
    mfa_method: Option<&str>,
    source_ip: Option<String>,
    user_agent: Option<String>,
) -> Result<Issued, ApiError> {
    let now = state.now();
    let auth = &state.config().auth;
    let refresh = OpaqueToken::generate(REFRESH_PREFIX).map_err(ApiError::internal)?;
    let session = state
        .store()
        .create_session(
            &NewSession {
                user_id: user.id,
                refresh_token_hash: refresh.hash().0,
                idle_timeout: lifetime(auth.refresh_idle()),
                absolute_lifetime: lifetime(auth.session_max()),
                source_ip,
                user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
                mfa_method: mfa_method.map(str::to_owned),
            },
            now,
        )
        .await?;
    state.store().record_login_success(user.id, now).await?;
    let headers = cookies_for(state, user, session.id, &refresh)?;
    Ok(Issued { session_id: session.id, headers })
}

/// The three session cookies for `session` with a fresh access token.
pub fn cookies_for(
    state: &AppState,
    user: &User,
    session: SessionId,
    refresh: &OpaqueToken,
) -> Result<HeaderMap, ApiError> {
    let auth = &state.config().auth;
    let claims = AccessClaims::with_lifetime(
        user.id.0.to_string(),
        user.role.as_str(),
        session.0.to_string(),
        state.now(),
        lifetime(auth.access_token_lifetime()),
    )
    .map_err(ApiError::internal)?;
    let access = jwt::issue(&state.keys().session_key, &claims).map_err(ApiError::internal)?;
    let csrf = csrf_token()?;
    let mut headers = HeaderMap::new();
    cookies::set_session(
        &mut headers,
        &access,
        auth.access_token_lifetime(),
        refresh.expose(),
        auth.refresh_idle(),
        &csrf,
    );
    Ok(headers)
}

fn csrf_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("random: {e}")))?;
    Ok(BASE64URL_NOPAD.encode(&bytes))
}
