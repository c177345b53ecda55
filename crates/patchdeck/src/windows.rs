//! Maintenance windows as the scheduler sees them: a host's (or a group's) stored windows and
//! blackouts turned into a [`patchdeck_schedule::Calendar`].
//!
//! The deployment engine asks [`host_calendar`] for a host's calendar and then
//! [`Calendar::open_at`] (may work start now?), [`Calendar::next_open`] (when, at the earliest?)
//! and [`patchdeck_schedule::splay`] (where in that interval this host starts). The REST API uses
//! the richer [`Schedule`] to name the window behind each occurrence.
//!
//! What applies:
//! - to a **host**: its own enabled windows and those of every group it is in; the global
//!   blackouts and those of its groups;
//! - to a **group**: the group's enabled windows; the global blackouts and the group's;
//! - to the **fleet** ([`fleet_occurrences`]): every enabled window in the caller's scope, each
//!   clipped by the blackouts that apply to its own host or group.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use patchdeck_schedule::{Calendar, Interval, ScheduleError};
use patchdeck_store::{
    Blackout, BlackoutFilter, GroupId, HostId, MaintenanceWindow, MaintenanceWindowId, Scope, Store, WindowFilter,
    WindowTarget,
};

/// Why a calendar could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error(transparent)]
    Store(#[from] patchdeck_store::Error),
    /// A stored window that the schedule crate refuses (e.g. its time zone vanished from the
    /// time zone database).
    #[error("maintenance window {id} cannot be scheduled: {source}")]
    Window {
        id: MaintenanceWindowId,
        #[source]
        source: ScheduleError,
    },
}

/// A calendar together with the stored windows (in [`patchdeck_schedule::Occurrence::source`]
/// order) and blackouts it was built from.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub calendar: Calendar,
    pub windows: Vec<MaintenanceWindow>,
    pub blackouts: Vec<Blackout>,
}

/// One occurrence of a stored window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowOccurrence {
    pub window_id: MaintenanceWindowId,
    pub window_name: String,
    /// The window's IANA time zone (its times of day are wall-clock times there).
    pub time_zone: String,
    pub target: WindowTarget,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The parts inside a blackout.
    pub blocked: Vec<Interval>,
}

impl Schedule {
    fn build(windows: Vec<MaintenanceWindow>, blackouts: Vec<Blackout>) -> Result<Schedule, CalendarError> {
        for window in &windows {
            window.fields.spec().validate().map_err(|source| CalendarError::Window { id: window.id, source })?;
        }
        let specs = windows.iter().map(|w| w.fields.spec()).collect();
        let intervals = blackouts.iter().map(Blackout::interval).collect();
        // Stored blackouts always end after they start (a CHECK), and the windows were checked.
        let calendar = Calendar::new(specs, intervals).map_err(|source| CalendarError::Window {
            id: windows.first().map_or(MaintenanceWindowId(0), |w| w.id),
            source,
        })?;
        Ok(Schedule { calendar, windows, blackouts })
    }

    /// The occurrences overlapping `[from, to)`, naming their windows.
    pub fn occurrences(&self, from: Timestamp, to: Timestamp) -> Vec<WindowOccurrence> {
        self.calendar
            .occurrences(from, to)
            .into_iter()
            .map(|o| {
                let window = &self.windows[o.source];
                WindowOccurrence {
                    window_id: window.id,
                    window_name: window.fields.name.clone(),
                    time_zone: window.fields.time_zone.clone(),
                    target: window.fields.target,
                    start: o.start,
                    end: o.end,
                    blocked: o.blocked,
                }
            })
            .collect()
    }
}

/// A host's windows (its own and its groups') and blackouts (global and its groups').
pub async fn host_schedule(store: &Store, host: HostId) -> Result<Schedule, CalendarError> {
    let windows = store.windows_for_host(host).await?;
    let blackouts = store.blackouts_for_host(host).await?;
    Schedule::build(windows, blackouts)
}

/// The calendar the deployment engine asks about a host.
pub async fn host_calendar(store: &Store, host: HostId) -> Result<Calendar, CalendarError> {
    Ok(host_schedule(store, host).await?.calendar)
}

/// A group's own windows and its blackouts (global and the group's).
pub async fn group_schedule(store: &Store, group: GroupId) -> Result<Schedule, CalendarError> {
    let windows = store.windows_for_group(group).await?;
    let blackouts = store.blackouts_for_group(group).await?;
    Schedule::build(windows, blackouts)
}

/// The calendar of a group's own windows.
pub async fn group_calendar(store: &Store, group: GroupId) -> Result<Calendar, CalendarError> {
    Ok(group_schedule(store, group).await?.calendar)
}

/// Every occurrence in `[from, to)` of every enabled window in `scope`, each clipped by the
/// blackouts that apply to its host (global and the host's groups') or group (global and the
/// group's), in start order.
pub async fn fleet_occurrences(
    store: &Store,
    scope: &Scope,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<WindowOccurrence>, CalendarError> {
    let filter = WindowFilter { enabled_only: true, ..WindowFilter::new(scope.clone()) };
    let windows = store.list_maintenance_windows(&filter).await?;
    let blackouts =
        store.list_blackouts(&BlackoutFilter { ending_after: Some(from), ..BlackoutFilter::new(Scope::All) }).await?;
    let mut host_groups: BTreeMap<HostId, BTreeSet<GroupId>> = BTreeMap::new();
    for host in windows.iter().filter_map(|w| w.fields.target.host_id()) {
        if let std::collections::btree_map::Entry::Vacant(entry) = host_groups.entry(host) {
            entry.insert(store.host_group_ids(host).await?.into_iter().collect());
        }
    }
    let mut out = Vec::new();
    for window in windows {
        let applies = |b: &&Blackout| match (b.fields.group_id, window.fields.target) {
            (None, _) => true,
            (Some(group), WindowTarget::Group(own)) => group == own,
            (Some(group), WindowTarget::Host(host)) => host_groups.get(&host).is_some_and(|g| g.contains(&group)),
        };
        let own: Vec<Blackout> = blackouts.iter().filter(applies).cloned().collect();
        out.extend(Schedule::build(vec![window], own)?.occurrences(from, to));
    }
    out.sort_by_key(|o| (o.start, o.window_id));
    Ok(out)
}
