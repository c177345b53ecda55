//! Managed hosts, and the scope rule that decides which of them a user can see.
//!
//! **Scope.** Admins see every host ([`Scope::All`]). An operator sees the hosts in any of their
//! groups *and every host that is in no group at all* ([`Scope::Groups`]): a freshly enrolled,
//! ungrouped host must be visible to someone who can place it. Every listing applies the scope to
//! its rows *and* to its total, so counts never reveal hosts outside the scope.
//!
//! **Approval.** An agent enrolls into [`Approval::Approved`] or, when the manager requires it,
//! [`Approval::Pending`] until an administrator approves or rejects it. [`Store::list_hosts`]
//! shows approved hosts unless the filter asks for another [`Approval`].
//!
//! **Agents.** A pull agent enrolls with a registration token ([`Store::enroll_agent_host`]: the
//! seat and the host row in one transaction), checks in often ([`Store::record_checkin`], one
//! cheap write), and is marked offline by a sweeper when it stops
//! ([`Store::mark_pull_hosts_offline`]).

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;
use patchdeck_proto::agent::Metrics;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use crate::error::{classify, Error, Result, ResultExt};
use crate::sql::{contains_pattern, ms, prefixed, to_json, Arg, RowExt, SqlBuilder};
use crate::tokens::{take_seat_in, TakeSeatError, TokenHashBytes};
use crate::types::{text_enum, GroupId, HostId, Page, Paging, RegistrationTokenId, SortDir};
use crate::{Backend, Store};

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
        /// A push host that answers but reports a problem (a stale or failed package cache, a
        /// CRL or repository key problem); it is still polled and sent commands.
        Degraded = "degraded",
    }
}

impl HostStatus {
    /// Whether the manager can reach the host now (online, or answering while degraded).
    pub fn is_reachable(self) -> bool {
        matches!(self, HostStatus::Online | HostStatus::Degraded)
    }
}

text_enum! {
    /// Whether an administrator let an enrolled agent in.
    Approval ("approval") {
        /// The host is managed (the default, and every host added by an administrator).
        Approved = "approved",
        /// Enrolled, waiting for an administrator.
        Pending = "pending",
        /// An administrator refused it; its agent gets `enrollment_rejected`.
        Rejected = "rejected",
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
    /// Whether an administrator let it in.
    pub approval: Approval,
    /// Version of its agent, from the latest enrollment or check-in.
    pub agent_version: Option<String>,
    /// Package manager of the latest inventory (`apt`, `dnf`, …).
    pub backend: Option<String>,
    /// Version format of the latest inventory (`deb`, `rpm`, `apk`, `pacman`).
    pub version_format: Option<String>,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_pretty_name: Option<String>,
    /// Running kernel.
    pub kernel: Option<String>,
    /// Machine architecture (`x86_64`, `aarch64`, …).
    pub arch: Option<String>,
    /// Boot id of the latest check-in; changes at every boot.
    pub boot_id: Option<String>,
    /// The host needs a reboot (latest check-in or inventory).
    pub reboot_required: bool,
    /// The IP addresses its agent reported (loopback and link-local left out).
    pub addresses: Vec<String>,
    /// Hash of the stored inventory (`sha256:…`), compared with the agent's at check-in.
    pub inventory_hash: Option<String>,
    /// When the stored inventory was scanned (the agent's clock).
    pub scanned_at: Option<Timestamp>,
    /// The latest check-in's metrics (JSON of `patchdeck_proto::agent::Metrics`).
    pub metrics: Option<serde_json::Value>,
    /// When those metrics arrived.
    pub metrics_at: Option<Timestamp>,
    /// Installed packages in the stored inventory.
    pub installed_count: i64,
    /// Available updates in the stored inventory.
    pub updates_count: i64,
    /// Available updates classified as security fixes.
    pub security_updates_count: i64,
    /// The registration token of its latest enrollment (unset when the token was deleted).
    pub registration_token_id: Option<RegistrationTokenId>,
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

/// What an agent tells the manager when it enrolls: the facts of a new pull host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgentHost {
    /// Short name.
    pub hostname: String,
    /// Fully qualified name (stored lower case).
    pub fqdn: Option<String>,
    /// The host's IP addresses.
    pub addresses: Vec<String>,
    /// `/etc/machine-id`: the host's identity, bound to the row.
    pub machine_id: String,
    /// Operating system id (`debian`).
    pub os_name: Option<String>,
    /// Operating system version (`12`).
    pub os_version: Option<String>,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_pretty_name: Option<String>,
    /// Running kernel.
    pub kernel: Option<String>,
    /// Machine architecture.
    pub arch: Option<String>,
    /// Version of the agent.
    pub agent_version: String,
    /// [`Approval::Pending`] when the manager requires approval, else [`Approval::Approved`].
    pub approval: Approval,
    /// The CSR to sign once the host is approved (kept only while approval is pending).
    pub pending_csr: Option<String>,
}

/// Why [`Store::enroll_agent_host`] or [`Store::reenroll_agent_host`] refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The registration token gave no seat (unknown, revoked, expired or full).
    #[error(transparent)]
    Seat(TakeSeatError),
    /// Another host row is bound to this machine id; no seat was taken.
    #[error("machine id is already enrolled as host {0}")]
    MachineAlreadyEnrolled(HostId),
    /// The database failed, the input was invalid, or (re-enrollment) the host does not exist.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for EnrollError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

impl From<TakeSeatError> for EnrollError {
    fn from(err: TakeSeatError) -> Self {
        match err {
            TakeSeatError::Store(err) => Self::Store(err),
            other => Self::Seat(other),
        }
    }
}

/// What a check-in tells the manager about the host.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinFacts {
    /// Version of the agent.
    pub agent_version: String,
    /// The metrics of the check-in. Its `boot_id` and `kernel` replace the stored ones when
    /// present; its `reboot_required` always does.
    pub metrics: Metrics,
}

/// What [`Store::record_checkin`] found before it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinOutcome {
    /// The status before this check-in (e.g. `offline`: the host came back).
    pub previous_status: HostStatus,
    /// The stored inventory hash: when it differs from the agent's, ask for the inventory.
    pub inventory_hash: Option<String>,
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
    /// By the number of available security updates.
    SecurityUpdates,
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
    /// Only hosts with this approval. **`None` means approved hosts only**: pending and
    /// rejected enrollments are listed only when asked for.
    pub approval: Option<Approval>,
    /// Substring of the operating system's name or pretty name, ignoring the case of ASCII
    /// letters.
    pub os: Option<String>,
    /// `Some(true)`: only hosts with security updates; `Some(false)`: only hosts without.
    pub has_security_updates: Option<bool>,
    /// Only hosts that need (`Some(true)`) or do not need (`Some(false)`) a reboot.
    pub reboot_required: Option<bool>,
    /// `Some(true)`: only hosts with an inventory (scanned at least once); `Some(false)`: only
    /// hosts never scanned.
    pub scanned: Option<bool>,
    /// Only hosts last seen before this time (exclusive); never-seen hosts do not match.
    pub seen_before: Option<Timestamp>,
    /// Only hosts last seen at or after this time; never-seen hosts do not match.
    pub seen_after: Option<Timestamp>,
    /// Order.
    pub sort: HostSort,
    /// Direction.
    pub dir: SortDir,
    /// Page.
    pub paging: Paging,
}

impl HostFilter {
    /// Every approved host in `scope`, first page, by hostname.
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            group: None,
            status: None,
            transport: None,
            search: None,
            approval: None,
            os: None,
            has_security_updates: None,
            reboot_required: None,
            scanned: None,
            seen_before: None,
            seen_after: None,
            sort: HostSort::default(),
            dir: SortDir::default(),
            paging: Paging::default(),
        }
    }
}

pub(crate) const HOST_COLUMNS: &str = "id, hostname, fqdn, address, transport, status, machine_id, os_name, \
    os_version, last_seen_at, approval, agent_version, backend, version_format, os_pretty_name, kernel, arch, \
    boot_id, reboot_required, addresses, inventory_hash, scanned_at, metrics, metrics_at, installed_count, \
    updates_count, security_updates_count, registration_token_id, created_at, updated_at";

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
        approval: row.parse("approval")?,
        agent_version: row.opt_text("agent_version")?,
        backend: row.opt_text("backend")?,
        version_format: row.opt_text("version_format")?,
        os_pretty_name: row.opt_text("os_pretty_name")?,
        kernel: row.opt_text("kernel")?,
        arch: row.opt_text("arch")?,
        boot_id: row.opt_text("boot_id")?,
        reboot_required: row.flag("reboot_required")?,
        addresses: row.json("addresses")?,
        inventory_hash: row.opt_text("inventory_hash")?,
        scanned_at: row.opt_ts("scanned_at")?,
        metrics: row.opt_json("metrics")?,
        metrics_at: row.opt_ts("metrics_at")?,
        installed_count: row.int("installed_count")?,
        updates_count: row.int("updates_count")?,
        security_updates_count: row.int("security_updates_count")?,
        registration_token_id: row.opt_int("registration_token_id")?.map(RegistrationTokenId),
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// Adds the scope condition on the hosts table aliased `h` to `sql`.
pub(crate) fn scope_condition(sql: &mut SqlBuilder, scope: &Scope) {
    if let Some(condition) = scope_sql(sql, scope) {
        sql.condition(condition);
    }
}

/// The condition (on hosts aliased `h`) that limits rows to `scope`, with its arguments bound
/// to `sql`; `None` for every host.
pub(crate) fn scope_sql(sql: &mut SqlBuilder, scope: &Scope) -> Option<String> {
    let Scope::Groups(groups) = scope else { return None };
    let ungrouped = "NOT EXISTS (SELECT 1 FROM host_groups sg WHERE sg.host_id = h.id)";
    if groups.is_empty() {
        return Some(ungrouped.to_owned());
    }
    let placeholders: Vec<String> = groups.iter().map(|group| sql.arg(group.0)).collect();
    Some(format!(
        "({ungrouped} OR EXISTS (SELECT 1 FROM host_groups sg WHERE sg.host_id = h.id AND sg.group_id IN ({})))",
        placeholders.join(", ")
    ))
}

/// Most ids bound to one `IN (…)` of a bulk name lookup.
pub(crate) const NAME_LOOKUP_CHUNK: usize = 500;

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

    /// The hostnames of these hosts, looked up in bulk (a few queries for any number of ids;
    /// duplicates are fine). A host that does not exist is left out of the map. No scope is
    /// applied: the caller names only hosts it may show.
    pub async fn host_names(&self, hosts: &[HostId]) -> Result<HashMap<HostId, String>> {
        let ids: Vec<i64> = hosts.iter().map(|h| h.0).collect();
        Ok(self
            .names_by_id("hosts", "hostname", &ids)
            .await?
            .into_iter()
            .map(|(id, name)| (HostId(id), name))
            .collect())
    }

    /// `name_column` of the rows of `table` with these ids, in chunks of [`NAME_LOOKUP_CHUNK`]
    /// (no query for no ids). `table` and `name_column` are this crate's constants, never input.
    pub(crate) async fn names_by_id(
        &self,
        table: &str,
        name_column: &str,
        ids: &[i64],
    ) -> Result<HashMap<i64, String>> {
        let ids: Vec<i64> = ids.iter().copied().collect::<BTreeSet<i64>>().into_iter().collect();
        let mut names = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(NAME_LOOKUP_CHUNK) {
            let mut sql = SqlBuilder::default();
            let placeholders = chunk.iter().map(|id| sql.arg(*id)).collect::<Vec<_>>().join(", ");
            sql.push(&format!("SELECT id, {name_column} AS name FROM {table} WHERE id IN ({placeholders})"));
            for row in sql.query().fetch_all(&self.pool).await? {
                names.insert(row.int("id")?, row.text("name")?);
            }
        }
        Ok(names)
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
        let approval = sql.arg(filter.approval.unwrap_or(Approval::Approved).as_str());
        sql.condition(format!("h.approval = {approval}"));
        if let Some(os) = non_empty(&filter.os) {
            let p = sql.arg(contains_pattern(os));
            sql.condition(format!(
                "(LOWER(COALESCE(h.os_name, '')) LIKE {p} ESCAPE '\\' \
                 OR LOWER(COALESCE(h.os_pretty_name, '')) LIKE {p} ESCAPE '\\')"
            ));
        }
        match filter.has_security_updates {
            Some(true) => sql.condition("h.security_updates_count > 0"),
            Some(false) => sql.condition("h.security_updates_count = 0"),
            None => {}
        }
        if let Some(reboot) = filter.reboot_required {
            let reboot = sql.arg(i64::from(reboot));
            sql.condition(format!("h.reboot_required = {reboot}"));
        }
        match filter.scanned {
            Some(true) => sql.condition("h.scanned_at IS NOT NULL"),
            Some(false) => sql.condition("h.scanned_at IS NULL"),
            None => {}
        }
        if let Some(before) = filter.seen_before {
            let before = sql.arg(ms(before));
            sql.condition(format!("h.last_seen_at < {before}"));
        }
        if let Some(after) = filter.seen_after {
            let after = sql.arg(ms(after));
            sql.condition(format!("h.last_seen_at >= {after}"));
        }
        let dir = filter.dir.sql();
        let order = match filter.sort {
            HostSort::Hostname => format!("{} {dir}, h.id {dir}", self.text_order("h.hostname")),
            HostSort::CreatedAt => format!("h.created_at {dir}, h.id {dir}"),
            HostSort::LastSeen => {
                format!("CASE WHEN h.last_seen_at IS NULL THEN 1 ELSE 0 END, h.last_seen_at {dir}, h.id {dir}")
            }
            HostSort::SecurityUpdates => format!("h.security_updates_count {dir}, h.id {dir}"),
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

    /// Enrolls a pull agent: takes a seat of the registration token and creates the host bound
    /// to `new.machine_id`, in one transaction.
    ///
    /// The seat follows [`Self::take_seat`] (revoked, then expired, then full; atomic under
    /// concurrency). When the machine id is already bound to a host the answer is
    /// [`EnrollError::MachineAlreadyEnrolled`] and the seat is given back (the transaction rolls
    /// back), also when two enrollments of one machine race. The host starts `pending` with the
    /// requested approval, and remembers the token it came with.
    pub async fn enroll_agent_host(
        &self,
        token_hash: &TokenHashBytes,
        new: &NewAgentHost,
        now: Timestamp,
    ) -> Result<Host, EnrollError> {
        let (hostname, machine_id) = check_agent_host(new)?;
        let addresses = to_json(&new.addresses, "addresses")?;
        let mut tx = self.begin_write().await?;
        let token = take_seat_in(&mut tx, token_hash, now).await?;
        if let Some(existing) = host_id_by_machine_id(&mut tx, machine_id).await? {
            tx.rollback().await?;
            return Err(EnrollError::MachineAlreadyEnrolled(existing));
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO hosts (hostname, fqdn, transport, status, machine_id, os_name, os_version, os_pretty_name, \
             kernel, arch, agent_version, approval, addresses, pending_csr, registration_token_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
             RETURNING {HOST_COLUMNS}"
        ))
        .bind(hostname)
        .bind(non_empty(&new.fqdn).map(str::to_lowercase))
        .bind(Transport::Pull.as_str())
        .bind(HostStatus::Pending.as_str())
        .bind(machine_id)
        .bind(new.os_name.as_deref())
        .bind(new.os_version.as_deref())
        .bind(new.os_pretty_name.as_deref())
        .bind(new.kernel.as_deref())
        .bind(new.arch.as_deref())
        .bind(new.agent_version.as_str())
        .bind(new.approval.as_str())
        .bind(addresses)
        .bind(new.pending_csr.as_deref())
        .bind(token.id.0)
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(err) => {
                tx.rollback().await?;
                return Err(self.machine_conflict(err, machine_id).await);
            }
        };
        let host = host_from_row(&row)?;
        tx.commit().await?;
        Ok(host)
    }

    /// Enrolls an agent again for an existing host (`patchdeck-agent enroll --force`): takes a
    /// seat and replaces the host's facts (names, addresses, operating system, agent version,
    /// pending CSR, registration token) in one transaction. The id, groups, inventory and
    /// command history stay.
    ///
    /// Approval is judged like a new enrollment's (`new.approval`), except that a rejected host
    /// stays rejected. [`EnrollError::Store`] with [`Error::NotFound`] when the host does not
    /// exist, [`EnrollError::MachineAlreadyEnrolled`] when another host holds the machine id; in
    /// both cases no seat is taken.
    pub async fn reenroll_agent_host(
        &self,
        token_hash: &TokenHashBytes,
        host: HostId,
        new: &NewAgentHost,
        now: Timestamp,
    ) -> Result<Host, EnrollError> {
        let (hostname, machine_id) = check_agent_host(new)?;
        let addresses = to_json(&new.addresses, "addresses")?;
        let mut tx = self.begin_write().await?;
        let token = take_seat_in(&mut tx, token_hash, now).await?;
        let updated = sqlx::query(&format!(
            "UPDATE hosts SET hostname = $2, fqdn = $3, machine_id = $4, os_name = $5, os_version = $6, \
             os_pretty_name = $7, kernel = $8, arch = $9, agent_version = $10, \
             approval = CASE WHEN approval = 'rejected' THEN approval ELSE $11 END, addresses = $12, \
             pending_csr = $13, registration_token_id = $14, updated_at = $15 \
             WHERE id = $1 RETURNING {HOST_COLUMNS}"
        ))
        .bind(host.0)
        .bind(hostname)
        .bind(non_empty(&new.fqdn).map(str::to_lowercase))
        .bind(machine_id)
        .bind(new.os_name.as_deref())
        .bind(new.os_version.as_deref())
        .bind(new.os_pretty_name.as_deref())
        .bind(new.kernel.as_deref())
        .bind(new.arch.as_deref())
        .bind(new.agent_version.as_str())
        .bind(new.approval.as_str())
        .bind(addresses)
        .bind(new.pending_csr.as_deref())
        .bind(token.id.0)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await;
        let row = match updated {
            Ok(Some(row)) => row,
            Ok(None) => {
                tx.rollback().await?;
                return Err(EnrollError::Store(Error::NotFound("host")));
            }
            Err(err) => {
                tx.rollback().await?;
                return Err(self.machine_conflict(err, machine_id).await);
            }
        };
        let host = host_from_row(&row)?;
        tx.commit().await?;
        Ok(host)
    }

    /// A failed write of a host row as an [`EnrollError`]: a collision on the machine id names
    /// the host that holds it.
    async fn machine_conflict(&self, err: sqlx::Error, machine_id: &str) -> EnrollError {
        match classify(err, UNIQUES, "registration token") {
            Error::Conflict(what) if what == "machine id already exists" => match self.pool.acquire().await {
                Ok(mut conn) => match host_id_by_machine_id(&mut conn, machine_id).await {
                    Ok(Some(id)) => EnrollError::MachineAlreadyEnrolled(id),
                    Ok(None) => EnrollError::Store(Error::Conflict(what)),
                    Err(err) => EnrollError::Store(err),
                },
                Err(err) => EnrollError::Store(err.into()),
            },
            other => EnrollError::Store(other),
        }
    }

    /// The CSR an enrollment left to sign once the host is approved. [`Error::NotFound`] when
    /// the host does not exist.
    pub async fn pending_csr(&self, host: HostId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT pending_csr FROM hosts WHERE id = $1")
            .bind(host.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound("host"))?;
        row.opt_text("pending_csr")
    }

    /// Forgets the pending CSR (its certificate was issued, or the host was rejected).
    pub async fn clear_pending_csr(&self, host: HostId) -> Result<()> {
        let done =
            sqlx::query("UPDATE hosts SET pending_csr = NULL WHERE id = $1").bind(host.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("host"));
        }
        Ok(())
    }

    /// Approves or rejects a host (or puts it back to pending).
    pub async fn set_host_approval(&self, host: HostId, approval: Approval, now: Timestamp) -> Result<Host> {
        let row = sqlx::query(&format!(
            "UPDATE hosts SET approval = $2, updated_at = $3 WHERE id = $1 RETURNING {HOST_COLUMNS}"
        ))
        .bind(host.0)
        .bind(approval.as_str())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(host_from_row).transpose()?.ok_or(Error::NotFound("host"))
    }

    /// Records a check-in: the host is `online`, last seen `now`, with the agent version, boot
    /// id, kernel, reboot flag and metrics of `facts`. Returns the status it had before and the
    /// stored inventory hash.
    ///
    /// One write per check-in. PostgreSQL does it in one statement (the row is locked by a
    /// sub-select that also yields the old status); SQLite, where a writer holds the whole
    /// database anyway, in a `BEGIN IMMEDIATE` transaction of a read and an update.
    pub async fn record_checkin(&self, host: HostId, facts: &CheckinFacts, now: Timestamp) -> Result<CheckinOutcome> {
        let metrics = to_json(&facts.metrics, "metrics")?;
        // $1 host, $2 now, $3 agent version, $4 boot id, $5 kernel, $6 reboot flag, $7 metrics.
        let update = |sql: String| {
            let mut update = SqlBuilder::default();
            update.arg(host.0);
            update.arg(ms(now));
            update.arg(facts.agent_version.as_str());
            update.arg(Arg::Text(facts.metrics.boot_id.clone()));
            update.arg(Arg::Text(facts.metrics.kernel.clone()));
            update.arg(i64::from(facts.metrics.reboot_required));
            update.arg(metrics.as_str());
            update.push(&sql);
            update
        };
        let set = "status = 'online', last_seen_at = $2, agent_version = $3, \
                   boot_id = COALESCE($4, hosts.boot_id), kernel = COALESCE($5, hosts.kernel), \
                   reboot_required = $6, metrics = $7, metrics_at = $2, updated_at = $2";
        let (previous_status, inventory_hash) = match self.backend {
            Backend::Postgres => {
                let update = update(format!(
                    "UPDATE hosts SET {set} FROM (SELECT id, status FROM hosts WHERE id = $1 FOR UPDATE) AS old \
                     WHERE hosts.id = old.id RETURNING old.status AS previous_status, hosts.inventory_hash"
                ));
                let row = update.query().fetch_optional(&self.pool).await?.ok_or(Error::NotFound("host"))?;
                (row.parse("previous_status")?, row.opt_text("inventory_hash")?)
            }
            Backend::Sqlite => {
                let mut tx = self.begin_write().await?;
                let old = sqlx::query("SELECT status FROM hosts WHERE id = $1")
                    .bind(host.0)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Error::NotFound("host"))?;
                let update = update(format!("UPDATE hosts SET {set} WHERE id = $1 RETURNING inventory_hash"));
                let row = update.query().fetch_one(&mut *tx).await?;
                tx.commit().await?;
                (old.parse("status")?, row.opt_text("inventory_hash")?)
            }
        };
        Ok(CheckinOutcome { previous_status, inventory_hash })
    }

    /// Marks `offline` every pull host that is `online` but was last seen before `seen_before`;
    /// returns their ids, ascending. One statement, so a check-in racing with it either lands
    /// first (and the host stays online) or after (and brings it back).
    pub async fn mark_pull_hosts_offline(&self, seen_before: Timestamp, now: Timestamp) -> Result<Vec<HostId>> {
        let rows = sqlx::query(
            "UPDATE hosts SET status = 'offline', updated_at = $2 \
             WHERE transport = 'pull' AND status = 'online' AND last_seen_at < $1 RETURNING id",
        )
        .bind(ms(seen_before))
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        let mut ids = rows.iter().map(|row| Ok(HostId(row.int("id")?))).collect::<Result<Vec<_>>>()?;
        ids.sort();
        Ok(ids)
    }

    /// Revokes every unrevoked certificate issued to the host (a forced re-enrollment, a
    /// compromised agent); returns the serials revoked now, sorted. Certificates revoked earlier
    /// keep their first revocation.
    pub async fn revoke_host_certificates(&self, host: HostId, reason: &str, now: Timestamp) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "UPDATE certificates SET revoked_at = $2, revocation_reason = $3 \
             WHERE host_id = $1 AND revoked_at IS NULL RETURNING serial",
        )
        .bind(host.0)
        .bind(ms(now))
        .bind(reason)
        .fetch_all(&self.pool)
        .await?;
        let mut serials = rows.iter().map(|row| row.text("serial")).collect::<Result<Vec<_>>>()?;
        serials.sort();
        Ok(serials)
    }
}

/// The hostname and machine id of an enrollment, trimmed and non-empty.
fn check_agent_host(new: &NewAgentHost) -> Result<(&str, &str)> {
    let hostname = new.hostname.trim();
    if hostname.is_empty() {
        return Err(Error::Invalid("hostname is empty".into()));
    }
    let machine_id = new.machine_id.trim();
    if machine_id.is_empty() {
        return Err(Error::Invalid("machine id is empty".into()));
    }
    Ok((hostname, machine_id))
}

async fn host_id_by_machine_id(conn: &mut AnyConnection, machine_id: &str) -> Result<Option<HostId>> {
    let row = sqlx::query("SELECT id FROM hosts WHERE machine_id = $1").bind(machine_id).fetch_optional(conn).await?;
    row.map(|row| Ok(HostId(row.int("id")?))).transpose()
}
