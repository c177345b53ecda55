//! `/api/v1/audit…`: the hash-chained audit log (admins only): list with filters, verify the
//! chain, export as JSON lines.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use patchdeck_store::{AuditEntry, AuditFilter, AuditId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::{page_of, ListResponse, PageParams};
use crate::web::{Json, Query};

/// An audit entry as the API and the export show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// RFC 3339 UTC.
    pub at: String,
    /// `user:<name>`, `system`, `cli` or `host:<id>`.
    pub actor: String,
    pub actor_user_id: Option<i64>,
    /// `resource.verb`, e.g. `auth.login`, `user.create`, `certificate.revoke`.
    pub action: String,
    pub target: Option<String>,
    pub source_ip: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// SHA-256 of this entry and the previous hash, hex.
    pub hash: String,
    pub prev_hash: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        AuditView {
            id: e.id.0,
            at: e.at.to_string(),
            actor: e.actor.clone(),
            actor_user_id: e.actor_user_id.map(|u| u.0),
            action: e.action.clone(),
            target: e.target.clone(),
            source_ip: e.source_ip.clone(),
            outcome: e.outcome.as_str().to_owned(),
            details: e.details.clone(),
            hash: data_encoding::HEXLOWER.encode(&e.hash),
            prev_hash: data_encoding::HEXLOWER.encode(&e.prev_hash),
        }
    }
}

/// Filters of the audit listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Exact actor, e.g. `user:alice`.
    pub actor: Option<String>,
    /// Action prefix, e.g. `auth.` or `user.create`.
    pub action: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// Exact target, e.g. `host:12`.
    pub target: Option<String>,
    /// From this time (RFC 3339).
    pub from: Option<String>,
    /// Before this time (RFC 3339).
    pub to: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

fn parse_time(field: &str, value: &Option<String>) -> ApiResult<Option<jiff::Timestamp>> {
    value
        .as_deref()
        .map(|v| v.parse::<jiff::Timestamp>().map_err(|_| ApiError::validation(field, "must be an RFC 3339 time")))
        .transpose()
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = ListResponse<AuditView>)))]
pub async fn list_audit(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<ListResponse<AuditView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| {
            o.parse::<Outcome>().map_err(|_| ApiError::validation("outcome", "must be success, failure or denied"))
        })
        .transpose()?;
    let filter = AuditFilter {
        actor: q.actor,
        action_prefix: q.action,
        outcome,
        target: q.target,
        from: parse_time("from", &q.from)?,
        to: parse_time("to", &q.to)?,
        paging,
        ..AuditFilter::default()
    };
    let page = state.store().list_audit(&filter).await?;
    Ok(Json(page_of(page, paging, |e| AuditView::from(e))))
}

/// The result of a chain check.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyReport {
    /// `intact` or `broken`.
    pub status: &'static str,
    pub checked: u64,
    /// The first entry whose hash does not match its content or its predecessor.
    pub first_broken: Option<i64>,
}

/// Checks the whole hash chain.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = VerifyReport)))]
pub async fn verify_audit(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<VerifyReport>> {
    let report = state.store().verify_audit_chain().await?;
    let broken = report.first_broken.map(|id| id.0);
    state
        .audit(
            AuditEvent::new(
                principal.actor(),
                "audit.verify",
                if broken.is_some() { Outcome::Failure } else { Outcome::Success },
            )
            .user(principal.user_id())
            .source(principal.source_ip.clone())
            .details(serde_json::json!({ "checked": report.checked, "first_broken": broken })),
        )
        .await;
    Ok(Json(VerifyReport {
        status: if broken.is_some() { "broken" } else { "intact" },
        checked: report.checked,
        first_broken: broken,
    }))
}

/// The whole log as JSON lines, oldest first (streamed).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", responses((status = 200, content_type = "application/x-ndjson")))]
pub async fn export_audit(State(state): State<AppState>, principal: Principal) -> Response {
    state
        .audit(
            AuditEvent::new(principal.actor(), "audit.export", Outcome::Success)
                .user(principal.user_id())
                .source(principal.source_ip.clone()),
        )
        .await;
    let batches = stream::unfold(Some(AuditId(0)), move |cursor| {
        let state = state.clone();
        async move {
            let cursor = cursor?;
            match state.store().audit_entries_after(Some(cursor), 1000).await {
                Ok(batch) if batch.is_empty() => None,
                Ok(batch) => {
                    let next = batch.last().map(|e| e.id);
                    let mut out = Vec::with_capacity(batch.len() * 256);
                    for entry in &batch {
                        if serde_json::to_writer(&mut out, &AuditView::from(entry)).is_ok() {
                            out.push(b'\n');
                        }
                    }
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(out)), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed part-way");
                    Some((Err(std::io::Error::other("audit export failed")), None))
                }
            }
        }
    });
    (
        [
            (CONTENT_TYPE, "application/x-ndjson"),
            (CONTENT_DISPOSITION, "attachment; filename=\"patchdeck-audit.jsonl\""),
        ],
        Body::from_stream(batches),
    )
        .into_response()
}
