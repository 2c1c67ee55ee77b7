//! The running switch's controller: it owns the switch file, the data
//! plane ([`Plane`]: the in-memory [`Datapath`] or the threaded `Switch` on
//! TAP devices) and the flows added at run time, and applies every change
//! to the tables.
//!
//! # What
//!
//! - [`Switchd::reload`]: loads and validates the file, compiles a new
//!   [`Generation`] (the rayon-parallel build, on the caller's thread, not
//!   the workers'), and publishes it with one atomic swap. A bad file
//!   changes nothing and returns the errors with `file:line:col`.
//! - [`Switchd::add_flow`] / [`Switchd::del_flows`]: flows added at run
//!   time (YAML, [`crate::model::added`]) and deletions, each a new
//!   generation too. Added flows survive reloads of the file; a file flow
//!   deleted at run time comes back at the next reload.
//! - [`Switchd::expire`]: the idle and hard timeouts of flows added at run
//!   time (against [`Clock`], the same clock the workers stamp packets
//!   with); [`watch`] runs it periodically.
//! - Reports for the control socket: [`Switchd::dump_flows`],
//!   [`Switchd::dump_ports`], [`Switchd::stats`], and [`Switchd::trace`]
//!   of a frame through the live tables on copies of the MAC table, meters
//!   and ports, so a trace changes nothing and sends nothing.
//!
//! # Design
//!
//! One mutex serialises the changes and reports; the workers never take
//! it. A flow is identified across generations by its table, name and
//! definition (the [`FlowSpec`] and the code of the custom programs it
//! uses); a flow whose identity survives a change keeps its counters
//! ([`carry`]), and none counted in the old generation is lost.
//!
//! The meters are fixed: a reload that changes them is refused (restart
//! the switch). So are the ports of the in-memory datapath; a switch on
//! TAP devices adds the ports a reload brings (before the new tables can
//! send to them) and removes those it drops (after), but refuses a port
//! whose settings changed.
//!
//! # Entry points
//!
//! A switch on devices: [`Switchd::prepare`] (load and compile), start the
//! plane with the ports and [`Prepared::generation`] (`RunningSwitch` in
//! [`crate::run`] does it all: [`crate::run::RunningSwitch::switchd`]),
//! then [`Switchd::start`], then [`Switchd::serve`] for the control socket
//! and the reload triggers. A plane that stamps packets itself gives
//! Switchd its clock ([`Plane::clock`]); otherwise workers must stamp
//! packets with [`Switchd::clock`]'s `now_ns()`. In memory:
//! [`Switchd::in_memory`].

pub mod carry;
pub mod clock;
pub mod plane;
mod report;
pub mod show;
pub mod watch;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use datapath::dp::pipeline::{Datapath, Generation};
use datapath::dp::port::{MemPort, PortId};
use datapath::ebpf::engine::Engine;
use datapath::ebpf::Insn;
use datapath::flow::spec::{Action, FlowSpec};
use thiserror::Error;

use crate::dataplane::{self, Customs};
use crate::model::{
    self, lower_added, Location, PortDesc, SwitchPlan, TableDesc, TopologyPlan, ADDED_SOURCE,
};
use carry::Carry;
pub use clock::Clock;
pub use plane::Plane;
use show::ChangeReport;

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SwitchdError {
    /// The file (or a flow) does not load or compile: located messages.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The change needs a restart (ports, meters).
    #[error("{0}")]
    Refused(String),
    #[error("no flow named `{0}`")]
    NoSuchFlow(String),
    #[error("no flow in table {0}")]
    EmptyTable(u8),
    #[error("trace: {0}")]
    Trace(String),
}

/// How the switch runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub engine: Engine,
    /// Datapath workers (per-flow counter blocks).
    pub workers: usize,
    pub clock: Clock,
    /// The name the switch answers to (its control socket); `None`: the
    /// file's `switch.name`.
    pub name: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            engine: Engine::Jit,
            workers: 1,
            clock: Clock::monotonic(),
            name: None,
        }
    }
}

/// A flow added at run time.
#[derive(Debug, Clone)]
struct RuntimeFlow {
    table: u8,
    name: String,
    /// As given, re-lowered at every reload (names resolve against the
    /// file of the moment).
    text: String,
    added_ms: u64,
    idle_timeout: u32,
    hard_timeout: u32,
}

/// A flow's identity across generations.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FlowDef {
    spec: FlowSpec,
    filter: Option<Vec<Insn>>,
    actions: Vec<Vec<Insn>>,
}

/// A compiled switch, not yet running.
#[derive(Debug)]
pub struct Prepared {
    path: PathBuf,
    file: SwitchPlan,
    topology: Option<TopologyPlan>,
    built: Built,
}

impl Prepared {
    /// The generation to create the datapath with.
    pub fn generation(&self) -> Arc<Generation> {
        Arc::clone(&self.built.generation)
    }

    /// The switch (for a topology file, its switch with the hosts as ports).
    pub fn plan(&self) -> &SwitchPlan {
        &self.file
    }

    pub fn topology(&self) -> Option<&TopologyPlan> {
        self.topology.as_ref()
    }
}

/// The result of a build.
#[derive(Debug)]
struct Built {
    plan: SwitchPlan,
    customs: Customs,
    generation: Arc<Generation>,
    defs: Vec<FlowDef>,
}

struct State {
    path: PathBuf,
    file: SwitchPlan,
    topology: Option<TopologyPlan>,
    runtime: Vec<RuntimeFlow>,
    built: Built,
    carry: Carry,
    reloads: u64,
    failed_reloads: u64,
    last_error: Option<String>,
}

/// A switch's control socket and reload watcher ([`Switchd::serve`]).
#[derive(Debug)]
pub struct Serving {
    pub server: crate::control::Server,
    pub watcher: Option<watch::Watcher>,
}

/// See the [module docs](self).
pub struct Switchd {
    name: String,
    opts: Options,
    dp: Arc<dyn Plane>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Switchd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switchd")
            .field("name", &self.name)
            .field("datapath", &self.dp)
            .finish_non_exhaustive()
    }
}

/// Loads a switch or topology file.
fn load(path: &Path) -> Result<(SwitchPlan, Option<TopologyPlan>), SwitchdError> {
    match model::load(path) {
        Ok(model::Loaded::Switch(s)) => Ok((s, None)),
        Ok(model::Loaded::Topology(t)) => Ok((t.switch.clone(), Some(t))),
        Err(e) => Err(SwitchdError::Invalid(
            e.0.iter().map(|e| e.to_string()).collect(),
        )),
    }
}

/// The file's flows plus those added at run time.
fn effective(file: &SwitchPlan, runtime: &[RuntimeFlow]) -> Result<SwitchPlan, SwitchdError> {
    let mut plan = file.clone();
    for r in runtime {
        let fail = |msg: String| {
            SwitchdError::Invalid(vec![format!(
                "flow `{}` (added at run time, table {}): {msg}",
                r.name, r.table
            )])
        };
        let a = lower_added(&plan, r.table, &r.text).map_err(|e| fail(e.to_string()))?;
        if plan.flow(&a.spec.name).is_some() {
            return Err(fail(format!(
                "the name `{}` is taken by another flow",
                a.spec.name
            )));
        }
        plan.filters = a.filters;
        plan.action_programs = a.action_programs;
        let index = plan.flows.len();
        match plan.tables.iter_mut().find(|t| t.id == r.table) {
            Some(t) => t.flows.push(index),
            None => {
                plan.tables.push(TableDesc {
                    id: r.table,
                    flows: vec![index],
                });
                plan.tables.sort_by_key(|t| t.id);
            }
        }
        plan.flows.push(a.spec);
        plan.flow_at
            .push(Location::start(&Arc::from(Path::new(ADDED_SOURCE))));
    }
    Ok(plan)
}

/// Removes the flows `drop` selects from a plan.
fn remove_flows(plan: &mut SwitchPlan, drop: impl Fn(&FlowSpec) -> bool) -> Vec<String> {
    let mut gone = Vec::new();
    let mut keep_at = Vec::new();
    let mut keep = Vec::new();
    for (f, at) in plan.flows.drain(..).zip(plan.flow_at.drain(..)) {
        if drop(&f) {
            gone.push(f.name);
        } else {
            keep.push(f);
            keep_at.push(at);
        }
    }
    plan.flows = keep;
    plan.flow_at = keep_at;
    for t in &mut plan.tables {
        t.flows = plan
            .flows
            .iter()
            .enumerate()
            .filter(|(_, f)| f.table == t.id)
            .map(|(i, _)| i)
            .collect();
    }
    gone
}

/// Compiles `plan`, reusing `old`'s maps when the programs declare the
/// same ones.
fn build(plan: SwitchPlan, old: Option<&Built>, opts: &Options) -> Result<Built, SwitchdError> {
    let customs = dataplane::custom_programs(&plan).map_err(SwitchdError::Invalid)?;
    let maps = old
        .filter(|o| o.customs.maps == customs.maps)
        .map(|o| Arc::clone(o.generation.maps()));
    let generation = dataplane::generation_with(&plan, &customs, maps, opts.engine, opts.workers)
        .map_err(SwitchdError::Invalid)?;
    let defs = plan
        .flows
        .iter()
        .map(|f| FlowDef {
            spec: f.clone(),
            filter: f
                .filter
                .and_then(|i| customs.filters.get(i as usize).cloned()),
            actions: f
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::Ebpf(i) => customs.actions.get(*i as usize).cloned(),
                    _ => None,
                })
                .collect(),
        })
        .collect();
    Ok(Built {
        plan,
        customs,
        generation: Arc::new(generation),
        defs,
    })
}

impl Switchd {
    /// Loads and compiles `path` (a switch or topology file).
    pub fn prepare(path: &Path, opts: &Options) -> Result<Prepared, SwitchdError> {
        let (file, topology) = load(path)?;
        let built = build(file.clone(), None, opts)?;
        Ok(Prepared {
            path: path.to_path_buf(),
            file,
            topology,
            built,
        })
    }

    /// Takes charge of `dp`, created with `prepared.generation()`. If the
    /// plane stamps packets with its own clock, that clock replaces
    /// `opts.clock` (one clock for packets and timeouts).
    pub fn start(prepared: Prepared, dp: Arc<dyn Plane>, mut opts: Options) -> Arc<Switchd> {
        let flows = prepared.built.defs.len();
        if let Some(c) = dp.clock() {
            opts.clock = c;
        }
        opts.workers = opts.workers.max(dp.workers());
        Arc::new(Switchd {
            name: opts
                .name
                .clone()
                .unwrap_or_else(|| prepared.file.name.clone()),
            opts,
            dp,
            state: Mutex::new(State {
                path: prepared.path,
                file: prepared.file,
                topology: prepared.topology,
                runtime: Vec::new(),
                built: prepared.built,
                carry: Carry::new(flows),
                reloads: 0,
                failed_reloads: 0,
                last_error: None,
            }),
        })
    }

    /// A switch on memory ports (one per port of the file, or per port its
    /// flows name), for tests and demos; `opts.workers` workers.
    pub fn in_memory(
        path: &Path,
        opts: Options,
    ) -> Result<(Arc<Switchd>, Vec<Arc<MemPort>>), SwitchdError> {
        let p = Self::prepare(path, &opts)?;
        let ids = dataplane::port_ids(&p.file, &[]);
        let (dp, mems) = dataplane::mem_datapath_for(
            &p.file,
            p.topology.as_ref(),
            &ids,
            p.generation(),
            opts.workers,
        )
        .map_err(|e| SwitchdError::Invalid(vec![e]))?;
        Ok((Self::start(p, Arc::new(dp), opts), mems))
    }

    /// Serves the control socket in `run_dir` (see
    /// [`control::run_dir`](crate::control::run_dir)) and, with `watch`,
    /// starts the reload triggers (SIGHUP, file changes) and the timeout
    /// sweep. Dropping the result stops both and removes the socket.
    pub fn serve(
        self: &Arc<Self>,
        run_dir: &Path,
        watch: Option<watch::WatchOptions>,
    ) -> Result<Serving, crate::control::ControlError> {
        let server = crate::control::listen(Arc::clone(self), run_dir)?;
        let watcher = match watch {
            Some(w) => Some(watch::spawn(Arc::clone(self), w).map_err(|source| {
                crate::control::ControlError::Io {
                    what: "cannot start the watcher of",
                    path: self.path(),
                    source,
                }
            })?),
            None => None,
        };
        Ok(Serving { server, watcher })
    }

    /// `switch.name` of the file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data plane.
    pub fn plane(&self) -> &Arc<dyn Plane> {
        &self.dp
    }

    /// The in-memory datapath, when that is the plane.
    pub fn datapath(&self) -> Option<&Datapath> {
        self.dp.as_datapath()
    }

    /// The clock workers must stamp packets with.
    pub fn clock(&self) -> &Clock {
        &self.opts.clock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state (every
        // change is built aside and installed at the end).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file the switch was loaded from.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// The files a reload reads: the switch file, or a topology file and
    /// its switch file.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let st = self.lock();
        let mut v = vec![st.path.clone()];
        if let Some(t) = &st.topology {
            v.push(t.flows_path.clone());
        }
        v
    }

    /// Swaps in `built`, carrying the counters of unchanged flows.
    fn install(&self, st: &mut State, built: Built, t0: Instant) -> ChangeReport {
        let by_name: HashMap<(u8, &str), usize> = built
            .defs
            .iter()
            .enumerate()
            .map(|(i, d)| ((d.spec.table, d.spec.name.as_str()), i))
            .collect();
        let map: Vec<Option<u32>> = st
            .built
            .defs
            .iter()
            .map(|d| {
                by_name
                    .get(&(d.spec.table, d.spec.name.as_str()))
                    .filter(|&&j| built.defs.get(j) == Some(d))
                    .map(|&j| j as u32)
            })
            .collect();
        let kept = map.iter().flatten().count();
        let report = ChangeReport {
            generation: built.generation.id(),
            flows: built.defs.len(),
            kept,
            fresh: built.defs.len() - kept,
            removed: st.built.defs.len() - kept,
            names: Vec::new(),
            build_ms: t0.elapsed().as_millis() as u64,
        };
        // Built for `opts.workers`, at least the plane's count: cannot fail.
        let _ = self.dp.publish(Arc::clone(&built.generation));
        let flows = built.defs.len();
        let old = std::mem::replace(&mut st.built, built);
        st.carry.advance(old.generation, &map, flows);
        report
    }

    /// The ports a reload from `old` to `new` adds and removes. Refused:
    /// a port whose settings changed, or any change on a plane whose
    /// ports are fixed.
    fn port_changes(
        &self,
        path: &Path,
        old: &SwitchPlan,
        new: &SwitchPlan,
    ) -> Result<(Vec<PortDesc>, Vec<PortId>), SwitchdError> {
        let running = self.dp.ports();
        let mut want: Vec<PortId> = new.ports.iter().map(|p| p.id).collect();
        let mut have: Vec<PortId> = running.ids().to_vec();
        want.sort_unstable();
        have.sort_unstable();
        if !new.ports_known {
            return Ok((Vec::new(), Vec::new()));
        }
        if let Some(p) = new
            .ports
            .iter()
            .find(|p| old.ports.iter().any(|o| o.id == p.id && o != *p))
        {
            return Err(SwitchdError::Refused(format!(
                "{}: port {} ({}) changed its settings; only whole ports are added or removed while the switch runs: restart it",
                path.display(),
                p.id,
                p.name
            )));
        }
        if want == have {
            return Ok((Vec::new(), Vec::new()));
        }
        let ids = |v: &mut dyn Iterator<Item = u32>| {
            v.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        };
        if !self.dp.ports_change() {
            return Err(SwitchdError::Refused(format!(
                "{}: the ports changed (running: {}; file: {}); ports are fixed while the switch runs: restart it",
                path.display(),
                ids(&mut have.into_iter()),
                ids(&mut want.into_iter()),
            )));
        }
        let added = new
            .ports
            .iter()
            .filter(|p| running.index_of(p.id).is_none())
            .cloned()
            .collect();
        let removed = running
            .ids()
            .iter()
            .copied()
            .filter(|id| !new.ports.iter().any(|p| p.id == *id))
            .collect();
        Ok((added, removed))
    }

    /// Reloads the file (or switches to `path`); see the [module docs](self).
    pub fn reload(&self, path: Option<&Path>) -> Result<ChangeReport, SwitchdError> {
        let mut st = self.lock();
        let r = self.reload_locked(&mut st, path);
        match &r {
            Ok(_) => {
                st.reloads += 1;
                st.last_error = None;
            }
            Err(e) => {
                st.failed_reloads += 1;
                st.last_error = Some(e.to_string());
            }
        }
        r
    }

    fn reload_locked(
        &self,
        st: &mut State,
        path: Option<&Path>,
    ) -> Result<ChangeReport, SwitchdError> {
        let t0 = Instant::now();
        let path = path.map_or_else(|| st.path.clone(), Path::to_path_buf);
        let (file, topology) = load(&path)?;
        let (added, removed) = self.port_changes(&path, &st.file, &file)?;
        let meters = |p: &SwitchPlan| -> Vec<(u64, u64)> {
            p.meters.iter().map(|m| (m.rate_kbps, m.burst_kb)).collect()
        };
        if meters(&file) != meters(&st.file) {
            return Err(SwitchdError::Refused(format!(
                "{}: the meters changed; meters are fixed while the switch runs: restart it",
                path.display()
            )));
        }
        let plan = effective(&file, &st.runtime)?;
        let built = build(plan, Some(&st.built), &self.opts)?;
        // New ports exist before a flow can send to them; old ones go once
        // no flow does.
        self.dp
            .add_ports(&added)
            .map_err(|e| SwitchdError::Refused(format!("{}: {e}", path.display())))?;
        let report = self.install(st, built, t0);
        if let Err(e) = self.dp.remove_ports(&removed) {
            // The tables no longer use them: a port left over is idle.
            eprintln!("flowswitch {}: {e}", self.name);
        }
        st.path = path;
        st.file = file;
        st.topology = topology;
        Ok(report)
    }

    /// Adds the flow `text` (one flow as a switch file writes it) to table
    /// `table`; returns its name.
    pub fn add_flow(&self, table: u8, text: &str) -> Result<ChangeReport, SwitchdError> {
        let t0 = Instant::now();
        let mut st = self.lock();
        let a = lower_added(&st.built.plan, table, text)
            .map_err(|e| SwitchdError::Invalid(e.0.iter().map(|e| e.to_string()).collect()))?;
        let mut runtime = st.runtime.clone();
        runtime.push(RuntimeFlow {
            table,
            name: a.spec.name.clone(),
            text: text.to_string(),
            added_ms: self.opts.clock.now_ms(),
            idle_timeout: a.spec.idle_timeout,
            hard_timeout: a.spec.hard_timeout,
        });
        let plan = effective(&st.file, &runtime)?;
        let built = build(plan, Some(&st.built), &self.opts)?;
        let mut report = self.install(&mut st, built, t0);
        st.runtime = runtime;
        report.names = vec![a.spec.name];
        Ok(report)
    }

    /// Deletes the flow `name`, or every flow of table `table`.
    pub fn del_flows(
        &self,
        name: Option<&str>,
        table: Option<u8>,
    ) -> Result<ChangeReport, SwitchdError> {
        let hit = |t: u8, n: &str| name.is_none_or(|x| x == n) && table.is_none_or(|x| x == t);
        self.remove(hit, || match (name, table) {
            (Some(n), _) => SwitchdError::NoSuchFlow(n.to_string()),
            (None, Some(t)) => SwitchdError::EmptyTable(t),
            (None, None) => SwitchdError::NoSuchFlow(String::new()),
        })
    }

    fn remove(
        &self,
        hit: impl Fn(u8, &str) -> bool,
        none: impl FnOnce() -> SwitchdError,
    ) -> Result<ChangeReport, SwitchdError> {
        let t0 = Instant::now();
        let mut st = self.lock();
        let mut file = st.file.clone();
        let mut names = remove_flows(&mut file, |f| hit(f.table, &f.name));
        let runtime: Vec<RuntimeFlow> = st
            .runtime
            .iter()
            .filter(|r| {
                let gone = hit(r.table, &r.name);
                if gone {
                    names.push(r.name.clone());
                }
                !gone
            })
            .cloned()
            .collect();
        if names.is_empty() {
            return Err(none());
        }
        let plan = effective(&file, &runtime)?;
        let built = build(plan, Some(&st.built), &self.opts)?;
        let mut report = self.install(&mut st, built, t0);
        st.file = file;
        st.runtime = runtime;
        names.sort();
        report.names = names;
        Ok(report)
    }

    /// Removes the flows added at run time whose idle or hard timeout has
    /// passed (now = the switch's clock). `None`: none had.
    pub fn expire(&self) -> Result<Option<ChangeReport>, SwitchdError> {
        let now = self.opts.clock.now_ms();
        let expired: Vec<(u8, String)> = {
            let mut st = self.lock();
            if st
                .runtime
                .iter()
                .all(|r| r.idle_timeout == 0 && r.hard_timeout == 0)
            {
                return Ok(None);
            }
            let State {
                built,
                carry,
                runtime,
                ..
            } = &mut *st;
            let totals = carry.totals(&built.generation);
            runtime
                .iter()
                .filter(|r| {
                    let last = built
                        .generation
                        .flow_id(&r.name)
                        .and_then(|i| totals.get(i as usize))
                        .map_or(0, |t| t.last_used)
                        .max(r.added_ms);
                    let idle = r.idle_timeout != 0
                        && now.saturating_sub(last) >= u64::from(r.idle_timeout) * 1000;
                    let hard = r.hard_timeout != 0
                        && now.saturating_sub(r.added_ms) >= u64::from(r.hard_timeout) * 1000;
                    idle || hard
                })
                .map(|r| (r.table, r.name.clone()))
                .collect()
        };
        if expired.is_empty() {
            return Ok(None);
        }
        // Only flows added at run time: file flows never match `hit`.
        let runtime_only = |t: u8, n: &str| expired.iter().any(|(et, en)| *et == t && en == n);
        let t0 = Instant::now();
        let mut st = self.lock();
        let runtime: Vec<RuntimeFlow> = st
            .runtime
            .iter()
            .filter(|r| !runtime_only(r.table, &r.name))
            .cloned()
            .collect();
        let names: Vec<String> = expired.iter().map(|(_, n)| n.clone()).collect();
        let plan = effective(&st.file, &runtime)?;
        let built = build(plan, Some(&st.built), &self.opts)?;
        let mut report = self.install(&mut st, built, t0);
        st.runtime = runtime;
        report.names = names;
        Ok(Some(report))
    }
}
