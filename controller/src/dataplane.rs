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
use datapath::ebpf::engine::Engine;
use datapath::ebpf::maps::{MapDef, Maps};
use datapath::ebpf::Insn;
use datapath::ebpf::{asm, elf};
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

/// A switch's custom programs, loaded, with the maps they use.
#[derive(Debug, Clone, Default)]
pub struct Customs {
    /// Filter programs, in index order.
    pub filters: Vec<Vec<Insn>>,
    /// Action programs, in index order.
    pub actions: Vec<Vec<Insn>>,
    /// The switch's maps: every map the ELF objects declare, by name
    /// (`lddw rX, map n` names the `n`th).
    pub maps: Vec<(String, MapDef)>,
}

impl Customs {
    /// The maps, made (empty).
    pub fn make_maps(&self) -> Result<Maps, String> {
        Maps::new(self.maps.iter().map(|(_, d)| *d)).map_err(|e| e.to_string())
    }

    /// Loads one program (assembler text, or a section of an ELF object
    /// whose maps join the switch's).
    fn load(&mut self, p: &EbpfProgram) -> Result<Vec<Insn>, String> {
        let path = p.source.path();
        let err = |e: &dyn std::fmt::Display| format!("{}: `{}`: {e}", p.at, path.display());
        match &p.source {
            EbpfRef::Asm { .. } => {
                let text = crate::files::read_text(path).map_err(|e| err(&e))?;
                asm::assemble(&text).map_err(|e| err(&e))
            }
            EbpfRef::Elf { section, .. } => {
                let bytes = crate::files::read(path).map_err(|e| err(&e))?;
                let mut prog = elf::load(&bytes, section).map_err(|e| err(&e))?;
                for m in &prog.maps {
                    let Some(def) = m.def else {
                        return Err(err(&format!(
                            "map {:?} has no declaration (a struct fs_map in section \"maps\")",
                            m.name
                        )));
                    };
                    match self.maps.iter().find(|(n, _)| *n == m.name) {
                        Some((_, d)) if *d != def => {
                            return Err(err(&format!(
                                "map {:?} is declared as {} {}/{}x{} here and as {} {}/{}x{} by another program",
                                m.name,
                                def.kind,
                                def.key_size,
                                def.value_size,
                                def.max_entries,
                                d.kind,
                                d.key_size,
                                d.value_size,
                                d.max_entries
                            )))
                        }
                        Some(_) => {}
                        None => self.maps.push((m.name.clone(), def)),
                    }
                }
                let maps = &self.maps;
                prog.bind(|m| {
                    maps.iter()
                        .position(|(n, _)| *n == m.name)
                        .map(|i| i as u32)
                })
                .map_err(|e| err(&e))?;
                Ok(prog.insns)
            }
        }
    }
}

/// The custom filter and action programs of `plan` and their maps.
pub fn custom_programs(plan: &SwitchPlan) -> Result<Customs, Vec<String>> {
    let mut errors = Vec::new();
    let mut c = Customs::default();
    for p in &plan.filters {
        let code = c.load(p).unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        });
        c.filters.push(code);
    }
    for p in &plan.action_programs {
        let code = c.load(p).unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        });
        c.actions.push(code);
    }
    if errors.is_empty() {
        Ok(c)
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
    let c = custom_programs(plan)?;
    generation_with(plan, &c, None, engine, workers)
}

/// [`build_generation`] with the custom programs loaded, and the maps to
/// keep (a reload whose programs declare the same maps passes the running
/// generation's, so their contents survive); `None`: new, empty maps.
pub fn generation_with(
    plan: &SwitchPlan,
    c: &Customs,
    maps: Option<Arc<Maps>>,
    engine: Engine,
    workers: usize,
) -> Result<Generation, Vec<String>> {
    let maps = match maps {
        Some(m) => m,
        None => Arc::new(
            c.make_maps()
                .map_err(|e| vec![format!("{}: maps: {e}", plan.source.display())])?,
        ),
    };
    Generation::build(&GenerationSpec {
        flows: &plan.flows,
        filters: &c.filters,
        actions: &c.actions,
        miss: miss_policy(plan.miss),
        engine,
        workers,
        maps: Some(&maps),
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
    mem_datapath_for(plan, topology, ids, generation, 1)
}

/// [`mem_datapath`] for `workers` workers.
pub fn mem_datapath_for(
    plan: &SwitchPlan,
    topology: Option<&TopologyPlan>,
    ids: &[PortId],
    generation: Arc<Generation>,
    workers: usize,
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
    let dp = Datapath::new(ports, mac, meters(plan)?, generation, workers)
        .map_err(|e| format!("{}: {e}", plan.source.display()))?;
    Ok((dp, mems))
}
