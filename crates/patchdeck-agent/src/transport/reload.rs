//! Hot reload of the allow-list and the TLS configuration.
//!
//! A [`ReloadHandle`] swaps either one atomically: connections accepted afterwards use the new
//! one; connections already established keep the configuration they started with. A reload from
//! files validates them completely first; if that fails, the configuration in force is kept and
//! the error is returned.
//!
//! [`FileWatcher`] polls the files' metadata (modification time, size, inode) every few seconds
//! and reloads what changed. Polling needs no inotify dependency, works on every file system and
//! sees atomic replacement by `rename` (the usual way to deploy a certificate). Because each
//! change is tried once, a certificate and key replaced one after the other may fail on the first
//! poll (key mismatch, old configuration kept) and succeed on the next one, when the key changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::allowlist::{AllowList, AllowListError};
use super::certs::{CertError, TlsPaths};
use super::listener::Shared;
use super::tls::ServerTls;

/// Swaps the allow-list and TLS configuration of a running [`super::Listener`]. Cheap to clone.
#[derive(Clone)]
pub struct ReloadHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadHandle").finish_non_exhaustive()
    }
}

impl ReloadHandle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        ReloadHandle { shared }
    }

    /// The allow-list in force.
    pub fn allowlist(&self) -> Arc<AllowList> {
        self.shared.allowlist.load_full()
    }

    /// The TLS configuration in force.
    pub fn tls(&self) -> Arc<ServerTls> {
        self.shared.tls.load_full()
    }

    /// Puts `list` in force for new connections.
    pub fn set_allowlist(&self, list: AllowList) {
        tracing::info!(source = %list.source(), networks = list.networks().len(), "allow-list in force");
        self.shared.allowlist.store(Arc::new(list));
    }

    /// Puts `tls` in force for new connections.
    pub fn set_tls(&self, tls: ServerTls) {
        tracing::info!(cert = %tls.paths().server_cert.display(), not_after = tls.server_not_after(), "TLS configuration in force");
        self.shared.tls.store(Arc::new(tls));
    }

    /// Loads the allow-list file and puts it in force. On error the list in force stays, and the
    /// error (naming the file and entry) is returned.
    pub async fn reload_allowlist(&self, path: &std::path::Path) -> Result<(), AllowListError> {
        match AllowList::load(path).await {
            Ok(list) => {
                self.set_allowlist(list);
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "allow-list reload refused; the previous list stays in force");
                Err(error)
            }
        }
    }

    /// Checks the certificate files and puts the new TLS configuration in force. On error the
    /// configuration in force stays, and the error (naming the file) is returned.
    pub async fn reload_tls(&self, paths: &TlsPaths) -> Result<(), CertError> {
        let owned = paths.clone();
        let loaded = match tokio::task::spawn_blocking(move || ServerTls::load(&owned)).await {
            Ok(result) => result,
            // Only a panic in the loader gets here; keep the old configuration.
            Err(join) => Err(CertError::Config {
                ca: paths.ca_bundle.clone(),
                cert: paths.server_cert.clone(),
                reason: format!("loader task failed: {join}"),
            }),
        };
        match loaded {
            Ok(tls) => {
                self.set_tls(tls);
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "TLS reload refused; the previous configuration stays in force");
                Err(error)
            }
        }
    }
}

/// What identifies a version of a file: `None` when it is missing.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

/// What one [`FileWatcher::poll`] did. `None` means "unchanged, nothing tried".
#[derive(Debug, Default)]
pub struct PollOutcome {
    /// The allow-list reload, if its file changed.
    pub allowlist: Option<Result<(), AllowListError>>,
    /// The TLS reload, if any certificate file changed.
    pub tls: Option<Result<(), CertError>>,
}

/// Polls the allow-list and certificate files and reloads the ones that changed.
///
/// The watcher takes the files' state when it is created as the state already in force, so create
/// it right after loading the configuration the listener was started with.
#[derive(Debug)]
pub struct FileWatcher {
    handle: ReloadHandle,
    allowlist: Option<(PathBuf, Stamp)>,
    tls: Option<(TlsPaths, Vec<Stamp>)>,
}

impl FileWatcher {
    /// Watches `allowlist` and/or the files of `tls` (either may be `None`).
    pub fn new(handle: ReloadHandle, allowlist: Option<PathBuf>, tls: Option<TlsPaths>) -> Self {
        let allowlist = allowlist.map(|path| {
            let s = stamp(&path);
            (path, s)
        });
        let tls = tls.map(|paths| {
            let stamps = paths.files().iter().map(|p| stamp(p)).collect();
            (paths, stamps)
        });
        FileWatcher { handle, allowlist, tls }
    }

    /// Checks the files once and reloads what changed since the previous check. A change that
    /// fails to load is reported once, not on every poll; the next change is tried again.
    pub async fn poll(&mut self) -> PollOutcome {
        let mut outcome = PollOutcome::default();
        if let Some((path, seen)) = &mut self.allowlist {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                outcome.allowlist = Some(self.handle.reload_allowlist(path).await);
            }
        }
        if let Some((paths, seen)) = &mut self.tls {
            let now: Vec<Stamp> = paths.files().iter().map(|p| stamp(p)).collect();
            if now != *seen {
                *seen = now;
                outcome.tls = Some(self.handle.reload_tls(paths).await);
            }
        }
        outcome
    }

    /// Runs [`FileWatcher::poll`] every `every` until the returned task is aborted.
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        // Errors are logged by the reload handle.
        self.spawn_with(every, |_| {})
    }

    /// Like [`FileWatcher::spawn`], handing every poll's outcome to `on_poll` (to audit reloads).
    pub fn spawn_with(
        mut self,
        every: Duration,
        on_poll: impl Fn(PollOutcome) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                on_poll(self.poll().await);
            }
        })
    }
}
