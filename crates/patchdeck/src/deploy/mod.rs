//! Patch deployments: the frozen plan, rings, and the engine that carries them out.
//!
//! A deployment is created by the API ([`crate::web::handlers::deployments`]): the hosts are
//! resolved, each host's plan is frozen from its latest scan (exact `name=version` pairs, see
//! [`plan_for`]), hosts are put in rings ([`assign_rings`]) and the deployment is stored with its
//! hosts in `planning`. From then on it is a job in the database queue (`deployment:<id>`) that
//! [`engine::advance`] runs whenever something may have changed: a command of the deployment
//! finished, a user acted, a window opened, or a timer ran out.

pub mod engine;

use std::collections::BTreeMap;

use jiff::Timestamp;
use patchdeck_proto::inventory::SecurityClass;
use patchdeck_store::{DeploymentId, GroupId, HostId, HostUpdate, PlannedPackage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// The job kind of deployments in the queue.
pub const JOB_KIND: &str = "deployment";

/// The queue key of a deployment.
pub fn job_key(id: DeploymentId) -> String {
    format!("{JOB_KIND}:{id}")
}

/// The deployment a queue key names.
pub fn parse_job_key(key: &str) -> Option<DeploymentId> {
    key.strip_prefix("deployment:")?.parse().ok().map(DeploymentId)
}

/// Asks for the deployment's engine to run at `at` (now, when something changed).
pub async fn wake(state: &AppState, id: DeploymentId, at: Timestamp) -> Result<(), patchdeck_store::Error> {
    crate::jobs::enqueue(state, &job_key(id), JOB_KIND, at).await
}

/// Wakes the deployments a finished command belongs to (called when a result is stored).
pub async fn command_finished(state: &AppState, host: HostId, command: uuid::Uuid) {
    match state.store().deployments_for_command(host, command).await {
        Ok(ids) => {
            for id in ids {
                if let Err(e) = wake(state, id, state.now()).await {
                    tracing::warn!(error = %e, deployment.id = id.0, "could not wake a deployment");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look up the deployments of a command"),
    }
}

/// Sends the notifications of a deployment that finished, failed or halted.
pub async fn notify_status(state: &AppState, deployment: &patchdeck_store::Deployment) {
    use crate::notify::NotificationEvent;
    use patchdeck_store::{DeploymentStatus, HostRunState};
    if !matches!(
        deployment.status,
        DeploymentStatus::Succeeded
            | DeploymentStatus::PartiallyFailed
            | DeploymentStatus::Failed
            | DeploymentStatus::Halted
    ) {
        return;
    }
    let hosts = match state.store().deployment_hosts(deployment.id).await {
        Ok(hosts) => hosts,
        Err(e) => {
            tracing::warn!(error = %e, deployment.id = deployment.id.0, "could not count a deployment's hosts");
            return;
        }
    };
    let count = |states: &[HostRunState]| {
        u32::try_from(hosts.iter().filter(|h| states.contains(&h.state)).count()).unwrap_or(u32::MAX)
    };
    let succeeded = count(&[HostRunState::Succeeded]);
    let failed = count(&[HostRunState::Failed, HostRunState::RolledBack]);
    let skipped = count(&[HostRunState::Skipped, HostRunState::Cancelled]);
    let event = match deployment.status {
        DeploymentStatus::Halted => {
            let ring = usize::try_from(deployment.current_ring).unwrap_or(usize::MAX);
            let in_ring: Vec<_> = hosts.iter().filter(|h| h.ring == deployment.current_ring).collect();
            let counted = in_ring
                .iter()
                .filter(|h| !matches!(h.state, HostRunState::Skipped | HostRunState::Cancelled))
                .count()
                .max(1);
            let ok = in_ring.iter().filter(|h| h.state == HostRunState::Succeeded).count();
            NotificationEvent::DeploymentHalted {
                deployment_id: deployment.id.0,
                name: deployment.name.clone(),
                ring: deployment.rings.get(ring).map_or_else(|| format!("ring {ring}"), |r| r.name.clone()),
                success_rate: ok as f64 / counted as f64,
                threshold: deployment.rings.get(ring).map_or(1.0, |r| r.success_threshold),
            }
        }
        DeploymentStatus::Succeeded => NotificationEvent::DeploymentFinished {
            deployment_id: deployment.id.0,
            name: deployment.name.clone(),
            succeeded,
            failed,
            skipped,
        },
        _ => NotificationEvent::DeploymentFailed {
            deployment_id: deployment.id.0,
            name: deployment.name.clone(),
            succeeded,
            failed,
            reason: deployment.reason.clone().unwrap_or_default(),
        },
    };
    if let Err(e) = state.notifier().emit(event).await {
        tracing::warn!(error = %e, deployment.id = deployment.id.0, "could not queue a deployment notification");
    }
}

/// Which updates a deployment installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpdateSelection {
    /// Every available update.
    All,
    /// Security updates only.
    Security,
    /// The available updates of these packages (by name).
    Packages { packages: Vec<String> },
}

impl UpdateSelection {
    fn matches(&self, update: &HostUpdate) -> bool {
        match self {
            UpdateSelection::All => true,
            UpdateSelection::Security => update.security_class == SecurityClass::Security,
            UpdateSelection::Packages { packages } => packages.contains(&update.name),
        }
    }
}

/// The plan of one host: the exact versions of the selected updates in its latest scan, one
/// entry per package and architecture, sorted.
pub fn plan_for(updates: &[HostUpdate], selection: &UpdateSelection) -> Vec<PlannedPackage> {
    let mut plan: Vec<PlannedPackage> = updates
        .iter()
        .filter(|update| selection.matches(update))
        .map(|update| PlannedPackage {
            name: update.name.clone(),
            arch: update.arch.clone(),
            from: update.current_version.clone(),
            to: update.candidate_version.clone(),
        })
        .collect();
    plan.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    plan.dedup_by(|a, b| a.name == b.name && a.arch == b.arch);
    plan
}

/// The packages to install for a plan: `name=version`, each package once. (A package built
/// for two architectures has one candidate version in every supported package manager.)
pub fn install_specs(plan: &[PlannedPackage]) -> Vec<String> {
    let mut specs: Vec<String> = plan.iter().map(|p| format!("{}={}", p.name, p.to)).collect();
    specs.dedup();
    specs
}

/// A stage of a rollout as asked for: a group (canary hosts), or a cumulative share of the
/// hosts not taken by group rings. The last ring always takes every host left.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RingRequest {
    /// Shown to users; default `ring N`.
    pub name: Option<String>,
    /// The targeted hosts of this group.
    pub group_id: Option<i64>,
    /// Up to this percentage (1–100, cumulative) of the targeted hosts not in group rings.
    pub percent: Option<u8>,
    /// Share of the ring's hosts that must succeed for the next ring to start, in percent
    /// (default 100 for all rings but the last, which has no next ring).
    pub success_threshold: Option<f64>,
    /// Minutes to wait after the ring finished before the next one starts (default 0).
    pub soak_minutes: Option<u64>,
}

/// Puts each host in a ring: group rings take their group's hosts first (in ring order), then
/// percentage rings take cumulative shares of the rest in a stable order (a hash of the
/// deployment and host, so each deployment picks different canaries), and the last ring takes
/// everything left. Returns each host's ring index.
pub fn assign_rings(
    deployment_seed: u64,
    hosts: &[(HostId, Vec<GroupId>)],
    rings: &[RingRequest],
) -> BTreeMap<HostId, u32> {
    let mut assigned: BTreeMap<HostId, u32> = BTreeMap::new();
    if rings.is_empty() {
        return hosts.iter().map(|(host, _)| (*host, 0)).collect();
    }
    let last = u32::try_from(rings.len() - 1).unwrap_or(0);
    for (index, ring) in rings.iter().enumerate() {
        let Some(group) = ring.group_id else { continue };
        for (host, groups) in hosts {
            if !assigned.contains_key(host) && groups.contains(&GroupId(group)) {
                assigned.insert(*host, u32::try_from(index).unwrap_or(last));
            }
        }
    }
    let mut rest: Vec<HostId> =
        hosts.iter().map(|(host, _)| *host).filter(|host| !assigned.contains_key(host)).collect();
    rest.sort_by_key(|host| (spread(deployment_seed, *host), *host));
    let total = rest.len();
    let mut taken = 0usize;
    for (index, ring) in rings.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(last);
        let Some(percent) = ring.percent else { continue };
        let upto = if index == last { total } else { (total * usize::from(percent)).div_ceil(100) };
        while taken < upto.min(total) {
            assigned.insert(rest[taken], index);
            taken += 1;
        }
    }
    for host in &rest[taken..] {
        assigned.insert(*host, last);
    }
    assigned
}

fn spread(seed: u64, host: HostId) -> u64 {
    let digest = Sha256::new().chain_update(seed.to_be_bytes()).chain_update(host.0.to_be_bytes()).finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, security: bool) -> HostUpdate {
        HostUpdate {
            host_id: HostId(1),
            name: name.into(),
            arch: "amd64".into(),
            current_version: "1.0".into(),
            candidate_version: "1.1".into(),
            repository: None,
            security_class: if security { SecurityClass::Security } else { SecurityClass::NotSecurity },
            security_reason: String::new(),
            advisory_id: None,
            severity: None,
            cves: Vec::new(),
            reboot_likely: false,
        }
    }

    #[test]
    fn plans_freeze_the_selected_versions() {
        let updates = [update("zlib", false), update("openssl", true), update("bash", false)];
        let names = |plan: Vec<PlannedPackage>| plan.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(plan_for(&updates, &UpdateSelection::All)), ["bash", "openssl", "zlib"]);
        assert_eq!(names(plan_for(&updates, &UpdateSelection::Security)), ["openssl"]);
        let chosen = UpdateSelection::Packages { packages: vec!["zlib".into(), "absent".into()] };
        let plan = plan_for(&updates, &chosen);
        assert_eq!(
            plan,
            [PlannedPackage { name: "zlib".into(), arch: "amd64".into(), from: "1.0".into(), to: "1.1".into() }]
        );
        assert_eq!(install_specs(&plan), ["zlib=1.1"]);
    }

    fn ring(group: Option<i64>, percent: Option<u8>) -> RingRequest {
        RingRequest { name: None, group_id: group, percent, success_threshold: None, soak_minutes: None }
    }

    #[test]
    fn rings_take_groups_then_cumulative_shares_then_the_rest() {
        let hosts: Vec<(HostId, Vec<GroupId>)> =
            (1..=40).map(|i| (HostId(i), if i <= 2 { vec![GroupId(7)] } else { Vec::new() })).collect();
        let rings = [ring(Some(7), None), ring(None, Some(5)), ring(None, Some(25)), ring(None, None)];
        let assigned = assign_rings(99, &hosts, &rings);
        let count = |ring: u32| assigned.values().filter(|r| **r == ring).count();
        // 2 canaries; of the other 38: ceil(5%) = 2, up to ceil(25%) = 10 → 8 more, 28 left.
        assert_eq!((count(0), count(1), count(2), count(3)), (2, 2, 8, 28));
        assert_eq!(assigned[&HostId(1)], 0);
        // Stable for one deployment, different for another.
        assert_eq!(assign_rings(99, &hosts, &rings), assigned);
        let other = assign_rings(100, &hosts, &rings);
        let firsts =
            |a: &BTreeMap<HostId, u32>| a.iter().filter(|(_, r)| **r == 1).map(|(h, _)| *h).collect::<Vec<_>>();
        assert_ne!(firsts(&other), firsts(&assigned));
        // No rings: everyone in ring 0; a last percentage ring below 100 still takes the rest.
        assert!(assign_rings(1, &hosts, &[]).values().all(|r| *r == 0));
        let short = assign_rings(1, &hosts, &[ring(None, Some(10)), ring(None, Some(50))]);
        assert_eq!(short.values().filter(|r| **r == 1).count(), 36);
    }
}
