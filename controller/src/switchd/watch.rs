//! The reload triggers that need no client, and the timeout sweep, in one
//! background thread: every [`WatchOptions::interval`] (200 ms by default)
//! it
//! - reloads when a SIGHUP arrived ([`datapath::sys::signal`]), or when the
//!   switch file (and, for a topology, its switch file) changed: its
//!   modification time, length or contents' hash (a rewrite within one
//!   timestamp tick still differs in contents);
//! - expires flows added at run time whose idle or hard timeout passed.
//!
//! Outcomes are logged on stderr; a bad file leaves the switch as it was
//! and is logged once (the next change tries again).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::Switchd;

/// Watcher settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    pub interval: Duration,
    /// Reload on SIGHUP (installs the process's SIGHUP handler).
    pub sighup: bool,
    /// Reload when the file changes.
    pub file: bool,
    /// Run the timeout sweep.
    pub timeouts: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            interval: Duration::from_millis(200),
            sighup: true,
            file: true,
            timeouts: true,
        }
    }
}

/// What identifies a file's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    hash: u64,
}

/// The fingerprint of `path`; `None` when it cannot be read (a file being
/// replaced may briefly be missing).
pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    let bytes = crate::files::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(Fingerprint {
        modified: meta.modified().ok(),
        len: meta.len(),
        hash: h.finish(),
    })
}

/// The running watcher; dropping it stops the thread.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn prints(paths: &[PathBuf]) -> Vec<Option<Fingerprint>> {
    paths.iter().map(|p| fingerprint(p)).collect()
}

/// One round of the watcher: what it did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Reloaded(String),
    ReloadFailed(String),
    Expired(Vec<String>),
}

/// The watcher's state between rounds.
#[derive(Debug)]
pub struct WatchState {
    paths: Vec<PathBuf>,
    last: Vec<Option<Fingerprint>>,
}

impl WatchState {
    pub fn new(sw: &Switchd) -> Self {
        let paths = sw.watched_files();
        WatchState {
            last: prints(&paths),
            paths,
        }
    }

    /// One round: reload if `hup` or a file changed (with `opts.file`),
    /// then expire timed-out flows (with `opts.timeouts`).
    pub fn round(&mut self, sw: &Switchd, opts: &WatchOptions, hup: bool) -> Vec<Event> {
        let mut out = Vec::new();
        let now = if opts.file {
            prints(&self.paths)
        } else {
            self.last.clone()
        };
        let changed = opts.file && now != self.last && now.iter().all(Option::is_some);
        if hup || changed {
            self.last = now;
            match sw.reload(None) {
                Ok(r) => out.push(Event::Reloaded(format!(
                    "generation {}: {} flows ({} kept their counters, {} new or changed, {} removed) in {} ms",
                    r.generation, r.flows, r.kept, r.fresh, r.removed, r.build_ms
                ))),
                Err(e) => out.push(Event::ReloadFailed(e.to_string())),
            }
            // A reload may switch files (a topology naming another switch file).
            self.paths = sw.watched_files();
            self.last = prints(&self.paths);
        }
        if opts.timeouts {
            match sw.expire() {
                Ok(Some(r)) => out.push(Event::Expired(r.names)),
                Ok(None) => {}
                Err(e) => out.push(Event::ReloadFailed(e.to_string())),
            }
        }
        out
    }
}

/// Starts the watcher thread for `sw`.
pub fn spawn(sw: Arc<Switchd>, opts: WatchOptions) -> std::io::Result<Watcher> {
    if opts.sighup {
        datapath::sys::signal::install_sighup()?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // The files' first fingerprints are taken now, so that a change made
    // as soon as this returns is seen.
    let mut state = WatchState::new(&sw);
    let thread = std::thread::Builder::new()
        .name(format!("fs-watch-{}", sw.name()))
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(opts.interval);
                let hup = opts.sighup && datapath::sys::signal::take_sighup();
                for e in state.round(&sw, &opts, hup) {
                    match e {
                        Event::Reloaded(m) => eprintln!("flowswitch {}: reloaded: {m}", sw.name()),
                        Event::ReloadFailed(m) => {
                            eprintln!(
                                "flowswitch {}: reload refused, the running tables stay:\n{m}",
                                sw.name()
                            )
                        }
                        Event::Expired(names) => {
                            eprintln!("flowswitch {}: expired: {}", sw.name(), names.join(", "))
                        }
                    }
                }
            }
        })?;
    Ok(Watcher {
        stop,
        thread: Some(thread),
    })
}
