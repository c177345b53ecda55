//! Managed hosts, and the scope rule that decides which of them a user can see.
//!
//! **Scope.** Admins see every host ([`Scope::All`]). An operator sees the hosts in any of their
//! groups *and every host that is in no group at all* ([`Scope::Groups`]): a freshly enrolled,
//! ungrouped host must be visible to someone who can place it. Every listing applies the scope to
//! its rows *and* to its total, so counts never reveal hosts outside the scope.

use jiff::Timestamp;
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::sql::{contains_pattern, ms, prefixed, RowExt, SqlBuilder};
use crate::types::{text_enum, GroupId, HostId, Page, Paging, SortDir};
use crate::Store;

text_enum! {
    /// How the manager reaches a host.
    Transport ("transport") {
        /// The agent checks in with the manager.
        Pull = "pull",
        /// The manager calls the agent's Linux_Patch_API over mutual TLS.
        Push = "push",
    }
}

text_enum! {
    /// What the manager last knew about a host's reachability.
    HostStatus ("host status") {
        /// Registered, never heard from.
        Pending = "pending",
        /// Checked in (pull) or answered (push) recently.
        Online = "online",
        /// Missed its check-ins.
        Offline = "offline",
        /// A push host that did not answer.
        Unreachable = "unreachable",
    }
}

/// A managed host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Its id.
    pub id: HostId,
    /// Short name shown in the UI.
    pub hostname: String,
    /// Fully qualified name, lower case. Unique among push hosts.
    pub fqdn: Option<String>,
    /// IP address (text). Unique among push hosts.
    pub address: Option<String>,
    /// Pull or push.
    pub transport: Transport,
    /// Last known reachability.
    pub status: HostStatus,
    /// `/etc/machine-id` bound at enrollment; unique.
    pub machine_id: Option<String>,
    /// Operating system name.
    pub os_name: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Last check-in or successful poll.
    pub last_seen_at: Option<Timestamp>,
    /// Registration time.
    pub created_at: Timestamp,
    /// Last change to the row.
    pub updated_at: Timestamp,
}

/// A host to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHost {
    /// Short name.
    pub hostname: String,
    /// Fully qualified name (stored lower case).
    pub fqdn: Option<String>,
    /// IP address.
    pub address: Option<String>,
    /// Pull or push.
    pub transport: Transport,
    /// Initial status, usually [`HostStatus::Pending`].
    pub status: HostStatus,
    /// Machine id, for pull hosts.
    pub machine_id: Option<String>,
    /// Operating system name.
    pub os_name: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
}

/// Which hosts a user may see; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every host (admins).
    All,
    /// Hosts in any of these groups, plus hosts in no group.
    Groups(Vec<GroupId>),
}

/// How [`Store::list_hosts`] orders hosts (ties are always broken by id, same direction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostSort {
    /// By hostname, compared by code points.
    #[default]
    Hostname,
    /// By registration time.
    CreatedAt,
    /// By last contact; never-seen hosts come last in both directions.
    LastSeen,
}

/// Which hosts [`Store::list_hosts`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFilter {
    /// The caller's scope.
    pub scope: Scope,
    /// Only hosts in this group (still limited by the scope).
    pub group: Option<GroupId>,
    /// Only hosts with this status.
    pub status: Option<HostStatus>,
    /// Only hosts with this transport.
    pub transport: Option<Transport>,
    /// Substring of hostname, FQDN or address, ignoring the case of ASCII letters; `%` and `_`
    /// match literally.
    pub search: Option<String>,
    /// Order.
    pub sort: HostSort,
    /// Direction.
    pub dir: SortDir,
    /// Page.
    pub paging: Paging,
}

impl HostFilter {
    /// Every host in `scope`, first page, by hostname.
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            group: None,
            status: None,
            transport: None,
            search: None,
            sort: HostSort::default(),
            dir: SortDir::default(),
            paging: Paging::default(),
        }
    }
}

pub(crate) const HOST_COLUMNS: &str = "id, hostname, fqdn, address, transport, status, machine_id, os_name, \
    os_version, last_seen_at, created_at, updated_at";

const UNIQUES: &[(&str, &str)] =
    &[("machine_id", "machine id"), ("fqdn", "push host FQDN"), ("address", "push host address")];

pub(crate) fn host_from_row(row: &AnyRow) -> Result<Host> {
    Ok(Host {
        id: HostId(row.int("id")?),
        hostname: row.text("hostname")?,
        fqdn: row.opt_text("fqdn")?,
        address: row.opt_text("address")?,
        transport: row.parse("transport")?,
        status: row.parse("status")?,
        machine_id: row.opt_text("machine_id")?,
        os_name: row.opt_text("os_name")?,
        os_version: row.opt_text("os_version")?,
        last_seen_at: row.opt_ts("last_seen_at")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// Adds the scope condition on `h` to `sql`.
fn scope_condition(sql: &mut SqlBuilder, scope: &Scope) {
    let Scope::Groups(groups) = scope else { return };
    let ungrouped = "NOT EXISTS (SELECT 1 FROM host_groups sg WHERE sg.host_id = h.id)";
    if groups.is_empty() {
        sql.condition(ungrouped);
        return;
    }
    let placeholders: Vec<String> = groups.iter().map(|group| sql.arg(group.0)).collect();
    sql.condition(format!(
        "({ungrouped} OR EXISTS (SELECT 1 FROM host_groups sg WHERE sg.host_id = h.id AND sg.group_id IN ({})))",
        placeholders.join(", ")
    ));
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

impl Store {
    /// Registers a host. [`Error::Conflict`] when its machine id is taken, or when a push host's
    /// FQDN or address is already registered for push.
    pub async fn create_host(&self, new: &NewHost, now: Timestamp) -> Result<Host> {
        let hostname = new.hostname.trim();
        if hostname.is_empty() {
            return Err(Error::Invalid("hostname is empty".into()));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO hosts (hostname, fqdn, address, transport, status, machine_id, os_name, os_version, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {HOST_COLUMNS}"
        ))
        .bind(hostname)
        .bind(non_empty(&new.fqdn).map(str::to_lowercase))
        .bind(non_empty(&new.address))
        .bind(new.transport.as_str())
        .bind(new.status.as_str())
        .bind(non_empty(&new.machine_id))
        .bind(new.os_name.as_deref())
        .bind(new.os_version.as_deref())
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(UNIQUES, "record")?;
        host_from_row(&row)
    }

    /// The host with this id, regardless of scope (check [`Self::host_visible`] for users).
    pub async fn get_host(&self, id: HostId) -> Result<Option<Host>> {
        let row = sqlx::query(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host_from_row).transpose()
    }

    /// The host bound to this machine id.
    pub async fn get_host_by_machine_id(&self, machine_id: &str) -> Result<Option<Host>> {
        let row = sqlx::query(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE machine_id = $1"))
            .bind(machine_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host_from_row).transpose()
    }

    /// Deletes a host with its group memberships; its certificates stay (for the CRL).
    pub async fn delete_host(&self, id: HostId) -> Result<()> {
        let done = sqlx::query("DELETE FROM hosts WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("host"));
        }
        Ok(())
    }

    /// Sets a host's status, and its last contact when `seen_at` is given.
    pub async fn set_host_status(
        &self,
        id: HostId,
        status: HostStatus,
        seen_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Host> {
        let row = sqlx::query(&format!(
            "UPDATE hosts SET status = $2, last_seen_at = COALESCE($3, last_seen_at), updated_at = $4 \
             WHERE id = $1 RETURNING {HOST_COLUMNS}"
        ))
        .bind(id.0)
        .bind(status.as_str())
        .bind(seen_at.map(ms))
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(host_from_row).transpose()?.ok_or(Error::NotFound("host"))
    }

    /// One page of the hosts in `filter.scope` that match the filter, and how many match in
    /// total (same scope, same filters).
    pub async fn list_hosts(&self, filter: &HostFilter) -> Result<Page<Host>> {
        let mut sql = SqlBuilder::default();
        scope_condition(&mut sql, &filter.scope);
        if let Some(group) = filter.group {
            let group = sql.arg(group.0);
            sql.condition(format!(
                "EXISTS (SELECT 1 FROM host_groups fg WHERE fg.host_id = h.id AND fg.group_id = {group})"
            ));
        }
        if let Some(status) = filter.status {
            let status = sql.arg(status.as_str());
            sql.condition(format!("h.status = {status}"));
        }
        if let Some(transport) = filter.transport {
            let transport = sql.arg(transport.as_str());
            sql.condition(format!("h.transport = {transport}"));
        }
        if let Some(search) = non_empty(&filter.search) {
            let p = sql.arg(contains_pattern(search));
            sql.condition(format!(
                "(LOWER(h.hostname) LIKE {p} ESCAPE '\\' OR LOWER(COALESCE(h.fqdn, '')) LIKE {p} ESCAPE '\\' \
                 OR LOWER(COALESCE(h.address, '')) LIKE {p} ESCAPE '\\')"
            ));
        }
        let dir = filter.dir.sql();
        let order = match filter.sort {
            HostSort::Hostname => format!("{} {dir}, h.id {dir}", self.text_order("h.hostname")),
            HostSort::CreatedAt => format!("h.created_at {dir}, h.id {dir}"),
            HostSort::LastSeen => {
                format!("CASE WHEN h.last_seen_at IS NULL THEN 1 ELSE 0 END, h.last_seen_at {dir}, h.id {dir}")
            }
        };
        self.fetch_page(sql, &prefixed("h", HOST_COLUMNS), "hosts h", &order, filter.paging, host_from_row).await
    }

    /// Whether the host exists and is in `scope`. A host outside the scope and a missing host
    /// look the same, so a handler can answer 404 for both.
    pub async fn host_visible(&self, host: HostId, scope: &Scope) -> Result<bool> {
        let mut sql = SqlBuilder::default();
        let id = sql.arg(host.0);
        sql.condition(format!("h.id = {id}"));
        scope_condition(&mut sql, scope);
        sql.push(&format!("SELECT h.id FROM hosts h{}", sql.where_clause()));
        Ok(sql.query().fetch_optional(&self.pool).await?.is_some())
    }
}
