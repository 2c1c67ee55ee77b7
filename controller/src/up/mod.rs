//! `flowswitch up TOPOLOGY.yaml [--check]` and `flowswitch down NAME`:
//! Mininet-style topologies of network namespaces around one switch.
//!
//! `up`:
//! 1. loads the topology (errors with file:line:col, exit 1);
//! 2. checks every name: host `h` lives in namespace `PREFIX h`, its link
//!    is the TAP `fs-PREFIX h`. A namespace or interface of that name that
//!    exists and was not left by a crashed run of this same topology (see
//!    the state file below) is an error: never reused, never deleted;
//! 3. creates the namespaces, starts the switch with one TAP port per host
//!    (the switch creates the TAPs and keeps their descriptors), moves each
//!    TAP into its host's namespace and gives it the host's MAC, address
//!    and VLAN;
//! 4. with `--check`, runs the topology's checks ([`checks`]), prints the
//!    results table, tears everything down and exits 0 or 1; without it,
//!    stays up until SIGINT or SIGTERM, then tears down.
//!
//! The state file `RUN_DIR/<name>.up.json` records the namespaces of a
//! running topology and the pid that made them. `down NAME` (after a
//! crash) deletes those namespaces (the TAPs went with the crashed
//! process) and the file; it refuses while that pid is still alive.

pub mod bulk;
pub mod checks;
pub mod netns;
mod verb;

pub use verb::run;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{self, CheckSpec, SwitchPlan, TopologyPlan};
pub use crate::run::HostVlan;
use checks::{CheckResult, HostNs};
use netns::{Netns, NetnsError, IFNAME_MAX};

/// Why `up` or `down` stopped.
#[derive(Debug, Error)]
pub enum UpError {
    #[error("{0}")]
    Load(String),
    #[error("must run as root (effective uid {0}): it creates namespaces and TAP devices")]
    NotRoot(u32),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("host {host}: {what} name {name:?} is longer than {max} bytes; use a shorter --prefix or host name")]
    NameTooLong {
        host: String,
        what: &'static str,
        name: String,
        max: usize,
    },
    #[error("state file {path}: {msg}")]
    State { path: PathBuf, msg: String },
    #[error("topology {name:?} is still up (pid {pid}); stop that process first")]
    StillUp { name: String, pid: u32 },
    #[error("no topology {name:?} is recorded in {dir}")]
    NotUp { name: String, dir: PathBuf },
    #[error("switch: {0}")]
    Switch(String),
    #[error("{0}")]
    Signal(String),
}

/// The options of `up`.
#[derive(Debug, Clone)]
pub struct UpOpts {
    /// Run the checks and tear down.
    pub check: bool,
    /// Put before every namespace and TAP name (tests use a unique one).
    pub prefix: String,
    /// Where the state file goes ([`crate::control::run_dir`] by default).
    pub run_dir: PathBuf,
}

impl Default for UpOpts {
    fn default() -> Self {
        UpOpts {
            check: false,
            prefix: String::new(),
            run_dir: crate::control::run_dir(None),
        }
    }
}

/// A host's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNames {
    pub host: String,
    pub namespace: String,
    pub tap: String,
}

/// The state file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpState {
    pub name: String,
    pub pid: u32,
    pub hosts: Vec<HostNames>,
}

/// Each host's namespace and TAP names under `prefix`.
pub fn names(topo: &TopologyPlan, prefix: &str) -> Result<Vec<HostNames>, UpError> {
    topo.hosts
        .iter()
        .map(|h| {
            let namespace = format!("{prefix}{}", h.name);
            let tap = format!("fs-{prefix}{}", h.name);
            if tap.len() > IFNAME_MAX {
                return Err(UpError::NameTooLong {
                    host: h.name.clone(),
                    what: "TAP",
                    name: tap,
                    max: IFNAME_MAX,
                });
            }
            Ok(HostNames {
                host: h.name.clone(),
                namespace,
                tap,
            })
        })
        .collect()
}

fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.up.json"))
}

fn read_state(path: &Path) -> Result<Option<UpState>, UpError> {
    match crate::files::read_text(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| UpError::State {
                path: path.to_path_buf(),
                msg: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(UpError::State {
            path: path.to_path_buf(),
            msg: e.to_string(),
        }),
    }
}

fn write_state(path: &Path, state: &UpState) -> Result<(), UpError> {
    let err = |msg: String| UpError::State {
        path: path.to_path_buf(),
        msg,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(state).map_err(|e| err(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| err(e.to_string()))
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Deletes what a dead run of topology `name` recorded in `dir` left:
/// its namespaces and its state file. Returns the namespaces deleted.
pub fn down(dir: &Path, name: &str) -> Result<Vec<String>, UpError> {
    let path = state_path(dir, name);
    let Some(state) = read_state(&path)? else {
        return Err(UpError::NotUp {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        });
    };
    if state.pid != std::process::id() && alive(state.pid) {
        return Err(UpError::StillUp {
            name: name.to_string(),
            pid: state.pid,
        });
    }
    let mut deleted = Vec::new();
    for h in &state.hosts {
        if netns::namespace_exists(&h.namespace) {
            drop(Netns::adopt(&h.namespace));
            deleted.push(h.namespace.clone());
        }
    }
    std::fs::remove_file(&path).map_err(|e| UpError::State {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    Ok(deleted)
}

/// Refuses names that exist and are not ours; cleans up after a crashed
/// run of the same topology.
fn claim_names(dir: &Path, topo: &TopologyPlan, hosts: &[HostNames]) -> Result<(), UpError> {
    let path = state_path(dir, &topo.name);
    if let Some(old) = read_state(&path)? {
        if old.pid != std::process::id() && alive(old.pid) {
            return Err(UpError::StillUp {
                name: topo.name.clone(),
                pid: old.pid,
            });
        }
        eprintln!(
            "cleaning up after an earlier run of {} (pid {})",
            topo.name, old.pid
        );
        down(dir, &topo.name)?;
    }
    for h in hosts {
        if netns::namespace_exists(&h.namespace) {
            return Err(NetnsError::NamespaceExists(h.namespace.clone()).into());
        }
        if netns::link_exists(&h.tap) {
            return Err(NetnsError::LinkExists(h.tap.clone()).into());
        }
    }
    Ok(())
}

/// The topology's switch with each port named after its host's TAP.
pub fn switch_plan(topo: &TopologyPlan, hosts: &[HostNames]) -> SwitchPlan {
    let mut plan = topo.switch.clone();
    for p in &mut plan.ports {
        if let Some(h) = topo
            .hosts
            .iter()
            .zip(hosts)
            .find(|(h, _)| h.port == p.id)
            .map(|(_, n)| n)
        {
            p.name = h.tap.clone();
        }
    }
    plan
}

/// A topology that is up: its namespaces (deleted on drop, after the
/// switch `G` is stopped) and its state file.
pub struct Up<G> {
    pub topo: TopologyPlan,
    pub names: Vec<HostNames>,
    /// Dropped first: the switch stops and its TAPs go.
    pub switch: Option<G>,
    namespaces: Vec<Netns>,
    state: PathBuf,
}

impl<G> Up<G> {
    /// The hosts with their namespaces, for the checks.
    pub fn hosts(&self) -> Vec<HostNs<'_>> {
        self.topo
            .hosts
            .iter()
            .zip(&self.namespaces)
            .map(|(plan, ns)| HostNs { plan, ns })
            .collect()
    }

    /// Runs the topology's checks in order; prints progress and returns
    /// the results.
    pub fn run_checks(&self) -> Vec<CheckResult> {
        let hosts = self.hosts();
        let find = |n: &str| hosts.iter().find(|h| h.plan.name == n);
        let mut results = Vec::new();
        for c in &self.topo.checks {
            match c {
                CheckSpec::Pingall => results.push(checks::pingall(&hosts, &self.topo.checks)),
                CheckSpec::Iperf(spec) => {
                    let (Some(a), Some(b)) = (find(&spec.from), find(&spec.to)) else {
                        continue;
                    };
                    eprintln!(
                        "iperf {} -> {} for {} s...",
                        spec.from, spec.to, spec.seconds.0
                    );
                    results.push(checks::iperf(a, b, spec.seconds.0));
                }
                CheckSpec::ExpectNoPing(p) => {
                    // A pair naming an unknown host was a load warning.
                    let (Some(a), Some(b)) = (find(&p.from), find(&p.to)) else {
                        continue;
                    };
                    results.push(checks::expect_no_ping(a, b));
                }
            }
        }
        results
    }
}

impl<G> Drop for Up<G> {
    fn drop(&mut self) {
        drop(self.switch.take());
        self.namespaces.clear();
        let _ = std::fs::remove_file(&self.state);
    }
}

/// Loads `path` and brings the topology up, starting the switch with
/// `start`. It gets the topology, the switch plan whose port names are the TAP names,
/// and the ports of hosts on a VLAN (with `switch_tags` set when this
/// kernel cannot make VLAN sub-interfaces: the host's link then stays
/// untagged and the switch port must tag for it). The TAPs must exist
/// when `start` returns.
pub fn bring_up<G>(
    path: &Path,
    opts: &UpOpts,
    start: impl FnOnce(&TopologyPlan, &SwitchPlan, &[HostVlan]) -> Result<G, String>,
) -> Result<Up<G>, UpError> {
    let topo = model::load_topology(path).map_err(|e| UpError::Load(e.to_string()))?;
    for w in &topo.warnings {
        eprintln!("warning: {w}");
    }
    match datapath::sys::cred::effective_uid() {
        0 => {}
        uid => return Err(UpError::NotRoot(uid)),
    }
    let names = names(&topo, &opts.prefix)?;
    claim_names(&opts.run_dir, &topo, &names)?;
    let state = state_path(&opts.run_dir, &topo.name);
    write_state(
        &state,
        &UpState {
            name: topo.name.clone(),
            pid: std::process::id(),
            hosts: names.clone(),
        },
    )?;
    let mut up = Up {
        switch: None,
        namespaces: Vec::new(),
        state,
        names,
        topo,
    };
    eprintln!("creating {} namespaces...", up.names.len());
    for h in &up.names {
        up.namespaces.push(Netns::create(&h.namespace)?);
    }
    let kernel_tags = match up.namespaces.first() {
        Some(ns) if up.topo.hosts.iter().any(|h| h.vlan.is_some()) => ns.kernel_has_vlan(),
        _ => true,
    };
    if !kernel_tags {
        eprintln!("this kernel has no 802.1Q support: the switch tags for the VLAN hosts");
    }
    let host_vlans: Vec<HostVlan> = up
        .topo
        .hosts
        .iter()
        .filter_map(|h| {
            h.vlan.map(|vid| HostVlan {
                port: h.port,
                vid,
                switch_tags: !kernel_tags,
            })
        })
        .collect();
    eprintln!("starting the switch...");
    let plan = switch_plan(&up.topo, &up.names);
    up.switch = Some(start(&up.topo, &plan, &host_vlans).map_err(UpError::Switch)?);
    for ((h, n), ns) in up.topo.hosts.iter().zip(&up.names).zip(&up.namespaces) {
        let mac = mac_text(h.mac.0);
        let addr = h.ip.to_string();
        let vlan = h.vlan.filter(|_| kernel_tags);
        ns.attach(&n.tap, &mac, &addr, vlan)?;
    }
    Ok(up)
}

/// `02:00:00:00:00:01` of a 48-bit MAC number.
pub fn mac_text(mac: u64) -> String {
    let b = mac.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_is_colon_hex() {
        assert_eq!(mac_text(0x0200_0000_00ab), "02:00:00:00:00:ab");
    }
}
