//! Request handlers, one module per resource, named `<verb>_<resource>`.

pub mod agent;
pub mod audit;
pub mod auth;
pub mod blackouts;
pub mod ca;
pub mod commands;
pub mod dashboard;
pub mod deployments;
pub mod discoveries;
pub mod enrollments;
pub mod events;
pub mod groups;
pub mod health;
pub mod hosts;
pub mod inventory;
pub mod maintenance_windows;
pub mod notifications;
pub mod passkeys;
pub mod registration_tokens;
pub mod settings;
pub mod sso;
pub mod users;

use patchdeck_store::{Page, Paging};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};

/// Largest page size a client may ask for.
pub const MAX_LIMIT: u32 = 500;

/// `?limit=&offset=` of every list (default 50, at most 500).
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

impl PageParams {
    /// Checked paging.
    pub fn paging(self) -> ApiResult<Paging> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let offset = self.offset.unwrap_or(0);
        if offset > 10_000_000 {
            return Err(ApiError::validation("offset", "is too large"));
        }
        Ok(Paging::new(limit, offset))
    }
}

/// One page of a list: `items` plus the `total` that match the same filters (and the caller's
/// scope), so clients can page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// Converts a store page to the API's list shape.
pub fn page_of<R, T>(page: Page<R>, paging: Paging, view: impl Fn(&R) -> T) -> ListResponse<T> {
    ListResponse {
        items: page.items.iter().map(view).collect(),
        total: page.total,
        limit: paging.limit,
        offset: paging.offset,
    }
}

/// One page of rows already in memory (a short list the store returns whole), in the API's
/// list shape; `total` counts them all.
pub fn page_of_all<R, T>(rows: &[R], paging: Paging, view: impl Fn(&R) -> T) -> ListResponse<T> {
    let start = usize::try_from(paging.offset).unwrap_or(usize::MAX).min(rows.len());
    let end = start.saturating_add(paging.limit as usize).min(rows.len());
    ListResponse {
        items: rows[start..end].iter().map(view).collect(),
        total: rows.len() as u64,
        limit: paging.limit,
        offset: paging.offset,
    }
}

/// `?order=asc|desc`.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl From<Order> for patchdeck_store::SortDir {
    fn from(o: Order) -> Self {
        match o {
            Order::Asc => patchdeck_store::SortDir::Asc,
            Order::Desc => patchdeck_store::SortDir::Desc,
        }
    }
}
