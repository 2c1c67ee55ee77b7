//! From a loaded switch file to the datapath: the custom eBPF programs read
//! and assembled, the table generation compiled, the meters and the memory
//! ports of an in-process datapath (`flowswitch trace`, tests). Errors are
//! messages that name `file:line:col` in the YAML.

use std::sync::Arc;
use std::time::Instant;

use datapath::dp::mac::{MacConfig, MacTable};
use datapath::dp::meter::Meters;
use datapath::dp::pipeline::{BuildError, Datapath, Generation, GenerationSpec, MissPolicy};
use datapath::dp::port::{MemPort, Port, PortId, PortSet, VlanSet};
use datapath::ebpf::asm;
use datapath::ebpf::engine::Engine;
use datapath::ebpf::Insn;
use datapath::flow::compile::{CompileError, FlowLoadError};
use datapath::flow::spec::Action;

use crate::check::CompileStats;
use crate::model::{EbpfProgram, EbpfRef, Miss, SwitchPlan, TopologyPlan};

/// The engine flow programs run on (`--engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineOpt {
    Jit,
    Interp,
}

impl EngineOpt {
    pub fn engine(self) -> Engine {
        match self {
            EngineOpt::Jit => Engine::Jit,
            EngineOpt::Interp => Engine::Interp,
        }
    }
}

/// The switch's miss behaviour in the datapath's terms.
pub fn miss_policy(m: Miss) -> MissPolicy {
    match m {
        Miss::Drop => MissPolicy::Drop,
        Miss::Normal => MissPolicy::Normal,
        Miss::Flood => MissPolicy::Flood,
    }
}

/// Reads and assembles one custom program.
fn load_custom(p: &EbpfProgram) -> Result<Vec<Insn>, String> {
    match &p.source {
        EbpfRef::Asm { path } => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: `{}`: {e}", p.at, path.display()))?;
            asm::assemble(&text).map_err(|e| format!("{}: `{}`: {e}", p.at, path.display()))
        }
        EbpfRef::Elf { path, section } => Err(format!(
            "{}: `{}` section {section}: ELF objects are not supported yet; use {{asm: FILE.s}}",
            p.at,
            path.display()
        )),
    }
}

/// Custom programs, in index order.
pub type Programs = Vec<Vec<Insn>>;

/// The custom filter and action programs of `plan`, in index order.
pub fn custom_programs(plan: &SwitchPlan) -> Result<(Programs, Programs), Vec<String>> {
    let mut errors = Vec::new();
    let mut load = |list: &[EbpfProgram]| -> Vec<Vec<Insn>> {
        list.iter()
            .map(|p| {
                load_custom(p).unwrap_or_else(|e| {
                    errors.push(e);
                    Vec::new()
                })
            })
            .collect()
    };
    let filters = load(&plan.filters);
    let actions = load(&plan.action_programs);
    if errors.is_empty() {
        Ok((filters, actions))
    } else {
        Err(errors)
    }
}

/// Where flow `name` is written, for messages.
fn flow_place(plan: &SwitchPlan, name: &str) -> String {
    plan.flows
        .iter()
        .position(|f| f.name == name)
        .and_then(|i| plan.flow_at.get(i))
        .map_or_else(|| plan.source.display().to_string(), |l| l.to_string())
}

/// A build error as a located message.
fn locate(plan: &SwitchPlan, e: &BuildError) -> String {
    match e {
        BuildError::Custom { kind, index, .. } => {
            let list = if *kind == "filter" {
                &plan.filters
            } else {
                &plan.action_programs
            };
            match list.get(*index) {
                Some(p) => format!("{}: `{}`: {e}", p.at, p.source.path().display()),
                None => format!("{}: {e}", plan.source.display()),
            }
        }
        BuildError::Flow(f) => {
            let name = match f {
                FlowLoadError::Compile(c) => match c {
                    CompileError::NoMatches { flow }
                    | CompileError::NoCustom { flow, .. }
                    | CompileError::BadCustom { flow, .. }
                    | CompileError::BadValue { flow, .. }
                    | CompileError::TooLarge { flow, .. } => flow,
                },
                FlowLoadError::Verify { flow, .. } => flow,
                FlowLoadError::Jit { first, .. } => first,
            };
            format!("{}: {e}", flow_place(plan, name))
        }
        BuildError::Table { .. } | BuildError::TooManyFlows { .. } => {
            format!("{}: {e}", plan.source.display())
        }
    }
}

/// Compiles `plan`'s flows into a generation for `engine` and `workers`
/// workers.
pub fn build_generation(
    plan: &SwitchPlan,
    engine: Engine,
    workers: usize,
) -> Result<Generation, Vec<String>> {
    let (filters, actions) = custom_programs(plan)?;
    Generation::build(&GenerationSpec {
        flows: &plan.flows,
        filters: &filters,
        actions: &actions,
        miss: miss_policy(plan.miss),
        engine,
        workers,
    })
    .map_err(|e| vec![locate(plan, &e)])
}

/// The `flowswitch check` hook: compiles every flow (JIT) and reports the
/// programs and instructions, or the errors.
pub fn compile_hook(plan: &SwitchPlan) -> Result<CompileStats, Vec<String>> {
    let t0 = Instant::now();
    let g = build_generation(plan, Engine::Jit, 1)?;
    let s = g.build_stats();
    Ok(CompileStats {
        programs: s.programs,
        instructions: s.instructions,
        elapsed: t0.elapsed(),
    })
}

/// The switch's meters.
pub fn meters(plan: &SwitchPlan) -> Result<Meters, String> {
    Meters::new(plan.meters.iter().map(|m| (m.rate_kbps, m.burst_kb)))
        .map_err(|e| format!("{}: meters: {e}", plan.source.display()))
}

/// The port ids of an in-process datapath for `plan`: its ports, or, when
/// a standalone file declares none, every port a flow sends to plus
/// `extra` (the ingress ports a caller will use).
pub fn port_ids(plan: &SwitchPlan, extra: &[PortId]) -> Vec<PortId> {
    let mut ids: Vec<PortId> = if plan.ports_known {
        plan.ports.iter().map(|p| p.id).collect()
    } else {
        let mut v: Vec<PortId> = extra.to_vec();
        for f in &plan.flows {
            for a in &f.actions {
                match a {
                    Action::Output(ps) => v.extend(ps),
                    Action::Mirror(p) => v.push(*p),
                    _ => {}
                }
            }
        }
        v
    };
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// An in-process datapath for `plan`: one memory port per port id (named
/// as in the file, or `port<ID>`), with the VLANs of a topology's tagged
/// hosts, a fresh MAC table, the meters, and `generation`.
pub fn mem_datapath(
    plan: &SwitchPlan,
    topology: Option<&TopologyPlan>,
    ids: &[PortId],
    generation: Arc<Generation>,
) -> Result<(Datapath, Vec<Arc<MemPort>>), String> {
    let mems: Vec<Arc<MemPort>> = ids
        .iter()
        .map(|&id| {
            let name = plan
                .ports
                .iter()
                .find(|p| p.id == id)
                .map_or_else(|| format!("port{id}"), |p| p.name.clone());
            Arc::new(MemPort::new(id, name))
        })
        .collect();
    let mut ports = PortSet::new(
        mems.iter()
            .map(|m| Arc::clone(m) as Arc<dyn Port>)
            .collect(),
    )
    .map_err(|e| format!("{}: {e}", plan.source.display()))?;
    if let Some(t) = topology {
        for h in &t.hosts {
            if let Some(v) = h.vlan {
                let set = VlanSet::of([v]).map_err(|e| format!("host {}: {e}", h.name))?;
                ports
                    .set_vlans(h.port, Some(set))
                    .map_err(|e| format!("host {}: {e}", h.name))?;
            }
        }
    }
    let mac = MacTable::with_seed(MacConfig::default(), 0);
    let dp = Datapath::new(ports, mac, meters(plan)?, generation, 1);
    Ok((dp, mems))
}
