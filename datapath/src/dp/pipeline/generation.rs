//! A table generation: everything a worker needs to run packets through a
//! switch's flows, compiled once and never changed afterwards.
//!
//! [`Generation::build`] takes the datapath's form of a switch file (flows,
//! custom programs, miss policy), and in parallel on the rayon pool
//! compiles, verifies and (for the JIT) translates every flow's program
//! ([`load_flows_counted`]), then builds one [`ClassifierTable`] per table.
//! The result is immutable: workers share it through an `Arc`, a reload
//! builds a new one, and each generation has its own id so that the
//! workers' exact-match caches ignore entries from older ones.
//!
//! Only what running needs is kept: per flow its name, table, priority and
//! a few flags, and its loaded program (the JIT's machine code, or for the
//! interpreter the verified [`Program`](crate::ebpf::Program)), and for a
//! lean JIT program also its 8-byte entry in a [`LeanTable`] (the
//! cache-hit path reaches that instead of the whole program); the
//! [`FlowSpec`]s stay with the caller.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::exec;
use crate::classifier::{entries_of_table, ClassifierError, ClassifierTable};
use crate::dp::stats::FlowStats;
use crate::ebpf::engine::{Engine, Loaded};
use crate::ebpf::insn::Insn;
use crate::ebpf::jit::{LeanRef, LeanTable};
use crate::ebpf::maps::Maps;
use crate::ebpf::verifier::{self, VerifyError};
use crate::ebpf::ProgEnv;
use crate::flow::compile::{key_determined, load_flows_counted, CompileOptions, FlowLoadError};
use crate::flow::spec::{Action, FlowSpec};

/// What a packet that matches no flow in a table gets (`switch.miss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MissPolicy {
    /// Dropped ([`DropReason::NoMatch`](crate::dp::stats::DropReason::NoMatch)).
    #[default]
    Drop,
    /// MAC-learning switching, as the `normal` action.
    Normal,
    /// Every port but the ingress one, as the `flood` action.
    Flood,
}

impl MissPolicy {
    pub fn name(self) -> &'static str {
        match self {
            MissPolicy::Drop => "drop",
            MissPolicy::Normal => "normal",
            MissPolicy::Flood => "flood",
        }
    }
}

/// What a generation is built from.
#[derive(Debug, Clone, Copy)]
pub struct GenerationSpec<'a> {
    /// Every flow of every table; a flow's index here is its id in the
    /// generation (counters, traces).
    pub flows: &'a [FlowSpec],
    /// Custom filter programs ([`FlowSpec::filter`] indexes them).
    pub filters: &'a [Vec<Insn>],
    /// Custom action programs ([`Action::Ebpf`] indexes them).
    pub actions: &'a [Vec<Insn>],
    pub miss: MissPolicy,
    pub engine: Engine,
    /// Workers that will run it (one per-flow counter block each).
    pub workers: usize,
    /// The switch's eBPF maps (`lddw rX, map n` in custom programs names
    /// the `n`th); `None`: none. A reload passes the same maps to keep
    /// their contents.
    pub maps: Option<&'a Arc<Maps>>,
}

/// Why a generation could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    /// A custom program, verified on its own for the flow environment, was
    /// rejected.
    #[error("custom {kind} program {index}: verifier: {source}")]
    Custom {
        kind: &'static str,
        index: usize,
        source: VerifyError,
    },
    /// A flow could not be compiled, verified or translated.
    #[error(transparent)]
    Flow(#[from] FlowLoadError),
    /// A table's flows are inconsistent (overlap at one priority, ...).
    #[error("table {table}: {message}")]
    Table { table: u8, message: String },
    /// More flows than flow ids.
    #[error("{count} flows: at most {max} fit in one generation", max = MAX_FLOWS)]
    TooManyFlows { count: usize },
}

/// Most flows in one generation (ids are `u32`, and [`NO_FLOW`] is taken).
pub const MAX_FLOWS: usize = (u32::MAX - 1) as usize;

/// A flow id that is no flow (a table miss in a cached path).
pub const NO_FLOW: u32 = u32::MAX;

/// One flow of a generation.
#[derive(Debug, Clone)]
pub struct FlowInfo {
    pub name: Box<str>,
    pub table: u8,
    pub priority: u16,
    /// It has a custom filter (its program may decline a packet its
    /// structured match accepts).
    pub filter: bool,
    /// It may change the flow key in ways the key does not determine (VLAN
    /// tags, custom actions) before a `goto_table`: a cached path through it
    /// might not be the path the classifier would choose next time.
    pub unstable: bool,
    /// Its program's return code is a function of the flow key alone and
    /// it has no other effect ([`key_determined`]): a cache hit may reuse
    /// the code instead of running it.
    pub key_determined: bool,
}

/// One table of a generation.
#[derive(Debug)]
pub struct Table {
    pub id: u8,
    pub classifier: ClassifierTable,
    /// Some flow has a custom filter: lookups must let programs decline.
    pub has_filters: bool,
    /// Flow ids in descending priority (ties in id order): the reference
    /// scan order.
    pub by_priority: Box<[u32]>,
}

/// Figures from building a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuildStats {
    /// Programs verified: one per flow plus the custom programs checked on
    /// their own.
    pub programs: usize,
    /// Instruction slots verified (flows, with their custom subprograms,
    /// and the custom programs on their own).
    pub instructions: usize,
    /// Compile, verify and JIT of the flows (and custom programs).
    pub compile: Duration,
    /// Building the classifier tables.
    pub classify: Duration,
}

/// No table with this id.
const NO_TABLE: u16 = u16::MAX;

/// A compiled, immutable table generation; see the [module docs](self).
pub struct Generation {
    id: u32,
    engine: Engine,
    miss: MissPolicy,
    /// Table id → index into `tables`, or [`NO_TABLE`].
    table_index: Box<[u16; 256]>,
    tables: Vec<Table>,
    flows: Box<[FlowInfo]>,
    programs: Box<[Loaded]>,
    /// Per flow, its program's lean entry if it has one (a lean JIT
    /// program): 8 bytes where a [`Loaded`] takes a few cache lines, for
    /// the workers' cache-hit path.
    lean: LeanTable,
    stats: FlowStats,
    build: BuildStats,
    maps: Arc<Maps>,
    workers: usize,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("id", &self.id)
            .field("engine", &self.engine)
            .field("miss", &self.miss)
            .field("tables", &self.tables.len())
            .field("flows", &self.flows.len())
            .field("build", &self.build)
            .finish()
    }
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// Whether a flow can change the key unpredictably before a goto_table.
fn unstable(spec: &FlowSpec) -> bool {
    let goto = spec
        .actions
        .iter()
        .any(|a| matches!(a, Action::GotoTable(_)));
    goto && spec.actions.iter().any(|a| {
        matches!(
            a,
            Action::PushVlan { .. } | Action::PopVlan | Action::Ebpf(_)
        )
    })
}

/// Verifies each custom program on its own, so that an error names the
/// program rather than the first flow using it.
fn check_custom(
    spec: &GenerationSpec<'_>,
    env: &Arc<ProgEnv>,
) -> Result<(usize, usize), BuildError> {
    let mut programs = 0;
    let mut insns = 0;
    for (kind, list) in [("filter", spec.filters), ("action", spec.actions)] {
        for (index, code) in list.iter().enumerate() {
            verifier::verify(code, env).map_err(|source| BuildError::Custom {
                kind,
                index,
                source,
            })?;
            programs += 1;
            insns += code.len();
        }
    }
    Ok((programs, insns))
}

fn table_error(spec: &GenerationSpec<'_>, table: u8, e: ClassifierError) -> BuildError {
    let name = |i: u32| {
        spec.flows
            .get(i as usize)
            .map_or_else(|| format!("#{i}"), |f| f.name.clone())
    };
    let message = match e {
        ClassifierError::Overlap {
            first,
            second,
            priority,
        } => format!(
            "flows {} and {} have the same priority {priority} and overlapping matches",
            name(first),
            name(second)
        ),
        ClassifierError::DuplicateFlow { flow } => format!("flow {} is there twice", name(flow)),
        ClassifierError::NoMatch { flow } => format!("flow {} has no match", name(flow)),
        ClassifierError::KeyOutsideMask { flow, .. } => {
            format!("flow {}: {e}", name(flow))
        }
    };
    BuildError::Table { table, message }
}

impl Generation {
    /// Compiles, verifies and loads every flow, and builds the tables.
    pub fn build(spec: &GenerationSpec<'_>) -> Result<Generation, BuildError> {
        if spec.flows.len() > MAX_FLOWS {
            return Err(BuildError::TooManyFlows {
                count: spec.flows.len(),
            });
        }
        let t0 = Instant::now();
        let maps = spec.maps.cloned().unwrap_or_default();
        let env = exec::flow_env(Arc::clone(&maps));
        let (custom_programs, custom_insns) = check_custom(spec, &env)?;
        let opts = CompileOptions {
            filters: spec.filters,
            actions: spec.actions,
        };
        let (programs, insns) = load_flows_counted(spec.flows, &opts, &env, spec.engine)?;
        let compile = t0.elapsed();

        let t1 = Instant::now();
        let mut present = [false; 256];
        present[0] = true;
        for f in spec.flows {
            present[usize::from(f.table)] = true;
        }
        let ids: Vec<u8> = (0..=u8::MAX).filter(|&t| present[usize::from(t)]).collect();
        let mut tables = Vec::with_capacity(ids.len());
        let mut table_index = Box::new([NO_TABLE; 256]);
        for id in ids {
            let classifier = ClassifierTable::build(entries_of_table(spec.flows, id))
                .map_err(|e| table_error(spec, id, e))?;
            let mut by_priority: Vec<u32> = spec
                .flows
                .iter()
                .enumerate()
                .filter(|(_, f)| f.table == id)
                .map(|(i, _)| i as u32)
                .collect();
            by_priority.sort_by_key(|&i| {
                let p = spec.flows.get(i as usize).map_or(0, |f| f.priority);
                (std::cmp::Reverse(p), i)
            });
            let has_filters = by_priority.iter().any(|&i| {
                spec.flows
                    .get(i as usize)
                    .is_some_and(|f| f.filter.is_some())
            });
            table_index[usize::from(id)] = tables.len() as u16;
            tables.push(Table {
                id,
                classifier,
                has_filters,
                by_priority: by_priority.into_boxed_slice(),
            });
        }
        let classify = t1.elapsed();

        let flows = spec
            .flows
            .iter()
            .map(|f| FlowInfo {
                name: f.name.as_str().into(),
                table: f.table,
                priority: f.priority,
                filter: f.filter.is_some(),
                unstable: unstable(f),
                key_determined: key_determined(f),
            })
            .collect();
        let lean = LeanTable::new(programs.iter().map(|p| match p {
            Loaded::Jit(j) => Some(j),
            Loaded::Interp(_) => None,
        }));
        Ok(Generation {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            engine: spec.engine,
            miss: spec.miss,
            table_index,
            tables,
            flows,
            programs: programs.into_boxed_slice(),
            lean,
            stats: FlowStats::new(spec.workers.max(1), spec.flows.len()),
            workers: spec.workers.max(1),
            build: BuildStats {
                programs: spec.flows.len() + custom_programs,
                instructions: insns + custom_insns,
                compile,
                classify,
            },
            maps,
        })
    }

    /// [`Generation::build`] into an `Arc`.
    pub fn build_arc(spec: &GenerationSpec<'_>) -> Result<Arc<Generation>, BuildError> {
        Self::build(spec).map(Arc::new)
    }

    /// The generation's id (distinct for every generation of the process).
    #[inline]
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn miss(&self) -> MissPolicy {
        self.miss
    }

    /// Table `id`, if it has flows (or is table 0).
    #[inline]
    pub fn table(&self, id: u8) -> Option<&Table> {
        let i = self.table_index[usize::from(id)];
        if i == NO_TABLE {
            None
        } else {
            self.tables.get(usize::from(i))
        }
    }

    /// The tables, by ascending id.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// Flow `id`.
    #[inline]
    pub fn flow(&self, id: u32) -> Option<&FlowInfo> {
        self.flows.get(id as usize)
    }

    /// Every flow, by id.
    pub fn flows(&self) -> &[FlowInfo] {
        &self.flows
    }

    /// The id of the flow called `name`.
    pub fn flow_id(&self, name: &str) -> Option<u32> {
        self.flows
            .iter()
            .position(|f| &*f.name == name)
            .map(|i| i as u32)
    }

    /// Flow `id`'s loaded program.
    #[inline]
    pub fn program(&self, id: u32) -> Option<&Loaded> {
        self.programs.get(id as usize)
    }

    /// Flow `id`'s lean entry, if its program has one (see
    /// [`LeanTable`]): the same program as [`program`](Self::program)'s.
    #[inline]
    pub fn lean(&self, id: u32) -> Option<LeanRef<'_>> {
        self.lean.get(id)
    }

    /// Where flow `id`'s lean entry is kept (whether or not it has one),
    /// for prefetching.
    #[inline]
    pub fn lean_slot(&self, id: u32) -> Option<&usize> {
        self.lean.slot(id)
    }

    /// Every flow has a lean entry: no packet's first program needs its
    /// [`Loaded`] entry.
    #[inline]
    pub fn all_lean(&self) -> bool {
        self.lean.count() == self.lean.len()
    }

    /// Per-flow counters (packets, bytes, last used), per worker.
    pub fn flow_stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Workers it has per-flow counters for.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The switch's maps its programs use.
    pub fn maps(&self) -> &Arc<Maps> {
        &self.maps
    }

    /// What building it took.
    pub fn build_stats(&self) -> BuildStats {
        self.build
    }
}
