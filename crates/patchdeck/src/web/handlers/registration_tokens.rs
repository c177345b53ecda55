//! `/api/v1/registration-tokens…` (admins only): the tokens agents enroll with. A token has a
//! number of seats (enrollments) and an expiry; its secret is shown once, at creation, and only
//! its SHA-256 hash is stored.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_store::{NewRegistrationToken, RegistrationToken, RegistrationTokenId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::auth::check_label;
use crate::web::handlers::{page_of, ListResponse, PageParams};
use crate::web::{Json, Path, Query};

/// Prefix of registration token secrets (`pdk_reg_…`).
pub const TOKEN_PREFIX: &str = "reg";
/// Most enrollments one token may allow.
pub const MAX_SEATS: u32 = 100_000;
/// Longest lifetime of a token: a year.
pub const MAX_HOURS: u32 = 8760;

/// Whether a token can still enroll an agent, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
    /// Every seat is taken.
    UsedUp,
}

impl TokenStatus {
    /// The status at `now`; the reasons are checked in the order enrollment reports them
    /// (revoked, then expired, then full).
    pub fn of(token: &RegistrationToken, now: Timestamp) -> Self {
        if token.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if token.expires_at <= now {
            TokenStatus::Expired
        } else if token.seats_used >= token.seats_total {
            TokenStatus::UsedUp
        } else {
            TokenStatus::Active
        }
    }
}

/// A registration token as listed (never its secret or hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationTokenView {
    pub id: i64,
    pub label: String,
    pub seats_total: u32,
    pub seats_used: u32,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    /// Id of the admin who made it (unset when that account was deleted).
    pub created_by: Option<i64>,
    pub created_at: String,
    pub status: TokenStatus,
}

impl RegistrationTokenView {
    pub fn new(t: &RegistrationToken, now: Timestamp) -> Self {
        RegistrationTokenView {
            id: t.id.0,
            label: t.label.clone(),
            seats_total: t.seats_total,
            seats_used: t.seats_used,
            expires_at: t.expires_at.to_string(),
            revoked_at: t.revoked_at.map(|v| v.to_string()),
            created_by: t.created_by.map(|u| u.0),
            created_at: t.created_at.to_string(),
            status: TokenStatus::of(t, now),
        }
    }
}

async fn load(state: &AppState, id: i64) -> ApiResult<RegistrationToken> {
    state
        .store()
        .get_registration_token(RegistrationTokenId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("registration token"))
}

/// Page of the token list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RegistrationTokenQuery {
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Registration tokens, newest first.
#[utoipa::path(get, path = "/api/v1/registration-tokens", tag = "registration-tokens", params(RegistrationTokenQuery),
    responses((status = 200, body = ListResponse<RegistrationTokenView>), (status = 400)))]
pub async fn list_registration_tokens(
    State(state): State<AppState>,
    Query(q): Query<RegistrationTokenQuery>,
) -> ApiResult<Json<ListResponse<RegistrationTokenView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let page = state.store().list_registration_tokens(paging).await?;
    let now = state.now();
    Ok(Json(page_of(page, paging, |t| RegistrationTokenView::new(t, now))))
}

/// One registration token.
#[utoipa::path(get, path = "/api/v1/registration-tokens/{id}", tag = "registration-tokens", params(("id" = i64, Path)),
    responses((status = 200, body = RegistrationTokenView), (status = 404)))]
pub async fn get_registration_token(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<RegistrationTokenView>> {
    Ok(Json(RegistrationTokenView::new(&load(&state, id).await?, state.now())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegistrationTokenRequest {
    /// What the token is for, e.g. "web servers, rack 4" (1–100 printable characters).
    pub label: String,
    /// How many agents may enroll with it (1–100000).
    pub seats: u32,
    /// Lifetime in hours (1–8760).
    pub expires_in_hours: u32,
}

/// A new registration token; `token` and `install_command` are shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedRegistrationToken {
    pub token: String,
    /// The command that enrolls an agent with this token.
    pub install_command: String,
    #[serde(flatten)]
    pub info: RegistrationTokenView,
}

/// Creates a registration token for enrolling agents.
#[utoipa::path(post, path = "/api/v1/registration-tokens", tag = "registration-tokens",
    request_body = CreateRegistrationTokenRequest,
    responses((status = 201, body = CreatedRegistrationToken), (status = 400)))]
pub async fn create_registration_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateRegistrationTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedRegistrationToken>)> {
    let label = check_label("label", &body.label)?;
    if !(1..=MAX_SEATS).contains(&body.seats) {
        return Err(ApiError::validation("seats", format!("must be between 1 and {MAX_SEATS}")));
    }
    if !(1..=MAX_HOURS).contains(&body.expires_in_hours) {
        return Err(ApiError::validation("expires_in_hours", format!("must be between 1 and {MAX_HOURS}")));
    }
    let token = OpaqueToken::generate(TOKEN_PREFIX).map_err(ApiError::internal)?;
    let now = state.now();
    let created = state
        .store()
        .create_registration_token(
            &NewRegistrationToken {
                token_hash: token.hash().0,
                label,
                seats_total: body.seats,
                expires_at: now + SignedDuration::from_hours(i64::from(body.expires_in_hours)),
                created_by: Some(principal.user_id()),
            },
            now,
        )
        .await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "registration_token.create", Outcome::Success)
                .user(principal.user_id())
                .target(format!("registration_token:{}", created.id))
                .source(principal.source_ip.clone())
                .details(json!({
                    "label": created.label,
                    "seats": created.seats_total,
                    "expires_at": created.expires_at.to_string(),
                })),
        )
        .await;
    let install_command = format!(
        "patchdeck-agent enroll --server {} --token {} --ca-fingerprint {}",
        state.config().public_url,
        token.expose(),
        state.keys().ca.fingerprint()
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedRegistrationToken {
            token: token.expose().to_owned(),
            install_command,
            info: RegistrationTokenView::new(&created, now),
        }),
    ))
}

/// Revokes a registration token: no more enrollments with it (agents already enrolled stay).
#[utoipa::path(delete, path = "/api/v1/registration-tokens/{id}", tag = "registration-tokens",
    params(("id" = i64, Path)), responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete_registration_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let revoked = state.store().revoke_registration_token(RegistrationTokenId(id), state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "registration_token.revoke", Outcome::Success)
                .user(principal.user_id())
                .target(format!("registration_token:{}", revoked.id))
                .source(principal.source_ip.clone())
                .details(json!({ "label": revoked.label, "seats_used": revoked.seats_used })),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
