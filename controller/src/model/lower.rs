//! From the typed switch file to what the datapath needs: `FlowSpec`s plus
//! descriptions of the ports, meters and tables, with every cross reference
//! checked on the way (ports, meters, tables, names, eBPF files) and every
//! error placed with the position index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datapath::flow::spec::{Action, FlowSpec, PortId, SetField};

use super::error::{Location, ModelError, Warning};
use super::matches::lower_match;
use super::overlap::check_overlaps;
use super::pos::PosIndex;
use super::switch::{ActionSpec, EbpfRef, Miss, SetFieldSpec, SwitchFile};
use super::value::PortRef;

/// A port of the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDesc {
    pub id: PortId,
    pub name: String,
    /// virtio-net header and offloads.
    pub offload: bool,
    pub queues: u16,
}

/// A token-bucket meter; `Action::Meter(i)` refers to `meters[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterDesc {
    pub name: String,
    pub rate_kbps: u64,
    pub burst_kb: u64,
}

/// A table: its id and its flows (indices into [`SwitchPlan::flows`], in
/// file order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDesc {
    pub id: u8,
    pub flows: Vec<usize>,
}

/// A custom eBPF program named in the file, its path resolved against the
/// YAML file's directory. Loading and assembling it is the compiler's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbpfProgram {
    pub source: EbpfRef,
    /// Where it is first named.
    pub at: Location,
}

/// A switch file, validated and lowered.
#[derive(Debug, Clone)]
pub struct SwitchPlan {
    pub name: String,
    /// The file it came from.
    pub source: Arc<Path>,
    /// Worker threads (the file's, else the number of cores).
    pub threads: usize,
    /// `switch.busy_poll_us` (else the datapath's default).
    pub busy_poll_us: u32,
    pub miss: Miss,
    /// Sorted by id. From `ports:`, or from a topology's hosts.
    pub ports: Vec<PortDesc>,
    /// False when a standalone switch file has no `ports:` section: port
    /// ids were then not checked (a topology provides them).
    pub ports_known: bool,
    pub meters: Vec<MeterDesc>,
    /// Sorted by id.
    pub tables: Vec<TableDesc>,
    /// Grouped by table (ascending id), file order within a table.
    pub flows: Vec<FlowSpec>,
    /// Where each flow of `flows` is written.
    pub flow_at: Vec<Location>,
    /// `FlowSpec::filter` indexes this.
    pub filters: Vec<EbpfProgram>,
    /// `Action::Ebpf` indexes this.
    pub action_programs: Vec<EbpfProgram>,
    pub warnings: Vec<Warning>,
}

impl SwitchPlan {
    /// The flow called `name`.
    pub fn flow(&self, name: &str) -> Option<&FlowSpec> {
        self.flows.iter().find(|f| f.name == name)
    }
}

/// The ports that references resolve against.
#[derive(Debug, Clone, Default)]
pub struct PortTable {
    /// `None`: unknown (a standalone switch file without `ports:`).
    ports: Option<Vec<PortDesc>>,
    /// Further names: a switch file's own `ports:` when a topology provides
    /// the ports, so that flows may still name ports as the file does.
    aliases: Vec<(String, PortId)>,
    /// Describes where the ports come from, for error hints.
    origin: String,
}

impl PortTable {
    pub fn known(ports: Vec<PortDesc>, origin: impl Into<String>) -> Self {
        PortTable {
            ports: Some(ports),
            aliases: Vec::new(),
            origin: origin.into(),
        }
    }

    pub fn unknown() -> Self {
        PortTable::default()
    }

    /// Adds the names of `other`'s ports as aliases.
    pub fn with_aliases(mut self, other: &PortTable) -> Self {
        if let Some(ps) = &other.ports {
            self.aliases = ps.iter().map(|d| (d.name.clone(), d.id)).collect();
        }
        self
    }

    fn resolve(&self, p: &PortRef) -> Result<PortId, String> {
        let Some(ps) = &self.ports else {
            return match p {
                PortRef::Id(id) => Ok(*id),
                PortRef::Name(_) => Err(
                    " (this file has no `ports:` section to look the name up in; use a port id)"
                        .to_string(),
                ),
            };
        };
        let id = match p {
            PortRef::Id(id) => *id,
            PortRef::Name(n) => match ps.iter().find(|d| d.name == *n) {
                Some(d) => return Ok(d.id),
                None => match self.aliases.iter().find(|(a, _)| a == n) {
                    Some((_, id)) => *id,
                    None => return Err(self.hint(ps)),
                },
            },
        };
        if ps.iter().any(|d| d.id == id) {
            Ok(id)
        } else {
            Err(self.hint(ps))
        }
    }

    fn hint(&self, ps: &[PortDesc]) -> String {
        let list: Vec<String> = ps.iter().map(|d| format!("{} {}", d.id, d.name)).collect();
        if list.is_empty() {
            format!(" (no ports are defined in {})", self.origin)
        } else {
            format!(" ({} defines: {})", self.origin, list.join(", "))
        }
    }
}

/// Collects errors and knows where things are.
pub(crate) struct Cx<'a> {
    pub pos: &'a PosIndex,
    pub errors: Vec<ModelError>,
    pub warnings: Vec<Warning>,
}

impl Cx<'_> {
    pub fn dup(&mut self, what: &'static str, name: String, at: Location, first: Location) {
        self.errors.push(ModelError::Duplicate {
            at,
            what,
            name,
            first,
        });
    }
}

/// A side table of eBPF programs, deduplicated by source.
#[derive(Default)]
pub(crate) struct Programs(pub Vec<EbpfProgram>);

impl Programs {
    fn add(&mut self, source: EbpfRef, at: Location) -> u32 {
        if let Some(i) = self.0.iter().position(|p| p.source == source) {
            return i as u32;
        }
        self.0.push(EbpfProgram { source, at });
        (self.0.len() - 1) as u32
    }
}

/// `path` joined to `dir` when relative.
pub(crate) fn relative_to(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        normalize(&dir.join(path))
    }
}

/// Removes `.` and `name/..` pairs without touching the file system.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// Resolves an eBPF reference against the YAML file's directory and checks
/// that the file exists.
fn resolve_ebpf(r: &EbpfRef, dir: &Path, path: &str, cx: &mut Cx) -> Option<EbpfRef> {
    let (key, file) = match r {
        EbpfRef::Asm { path } => ("asm", path),
        EbpfRef::Elf { path, .. } => ("elf", path),
    };
    let full = relative_to(dir, file);
    if !full.is_file() {
        cx.errors.push(ModelError::MissingFile {
            at: cx.pos.value(&format!("{path}.{key}")),
            path: file.clone(),
            reason: format!("no such file ({})", full.display()),
        });
        return None;
    }
    Some(match r {
        EbpfRef::Asm { .. } => EbpfRef::Asm { path: full },
        EbpfRef::Elf { section, .. } => EbpfRef::Elf {
            path: full,
            section: section.clone(),
        },
    })
}

/// The datapath's worker count when the file gives none.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The ports a standalone switch file declares, with duplicate checks.
pub(crate) fn declared_ports(file: &SwitchFile, cx: &mut Cx) -> PortTable {
    let Some(ports) = &file.ports else {
        return PortTable::unknown();
    };
    let mut by_id: HashMap<u32, usize> = HashMap::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        if let Some(first) = by_id.insert(p.id.0, i) {
            let at = cx.pos.value(&format!("ports[{i}].id"));
            let first = cx.pos.value(&format!("ports[{first}].id"));
            cx.dup("port id", p.id.0.to_string(), at, first);
        }
        if let Some(first) = by_name.insert(p.name.as_str(), i) {
            let at = cx.pos.value(&format!("ports[{i}].name"));
            let first = cx.pos.value(&format!("ports[{first}].name"));
            cx.dup("port name", p.name.0.clone(), at, first);
        }
        out.push(PortDesc {
            id: p.id.0,
            name: p.name.0.clone(),
            offload: p.offload,
            queues: p.queues.0,
        });
    }
    out.sort_by_key(|d| d.id);
    PortTable::known(out, "`ports:`")
}

fn set_fields(s: &SetFieldSpec) -> Vec<SetField> {
    let mut v = Vec::new();
    if let Some(m) = s.eth_src {
        v.push(SetField::EthSrc(m.0));
    }
    if let Some(m) = s.eth_dst {
        v.push(SetField::EthDst(m.0));
    }
    if let Some(a) = s.ipv4_src {
        v.push(SetField::Ipv4Src(a.0.into()));
    }
    if let Some(a) = s.ipv4_dst {
        v.push(SetField::Ipv4Dst(a.0.into()));
    }
    if let Some(a) = s.ipv6_src {
        v.push(SetField::Ipv6Src(a.0.into()));
    }
    if let Some(a) = s.ipv6_dst {
        v.push(SetField::Ipv6Dst(a.0.into()));
    }
    if let Some(d) = s.ip_dscp {
        v.push(SetField::IpDscp(d.0));
    }
    if let Some(p) = s.tcp_src {
        v.push(SetField::TcpSrc(p.0));
    }
    if let Some(p) = s.tcp_dst {
        v.push(SetField::TcpDst(p.0));
    }
    if let Some(p) = s.udp_src {
        v.push(SetField::UdpSrc(p.0));
    }
    if let Some(p) = s.udp_dst {
        v.push(SetField::UdpDst(p.0));
    }
    if let Some(x) = s.vlan_vid {
        v.push(SetField::VlanVid(x.0));
    }
    if let Some(x) = s.vlan_pcp {
        v.push(SetField::VlanPcp(x.0));
    }
    v
}

/// Validates and lowers a parsed switch file. `dir` is the file's directory
/// (eBPF paths are relative to it); `ports` is what port references resolve
/// against (the file's own, or a topology's hosts).
pub(crate) fn lower_switch(
    file: &SwitchFile,
    dir: &Path,
    ports: PortTable,
    cx: &mut Cx,
) -> SwitchPlan {
    let src = Arc::clone(cx.pos.file());
    let mut filters = Programs::default();
    let mut action_programs = Programs::default();

    // Meters.
    let meters: Vec<MeterDesc> = file
        .meters
        .0
        .iter()
        .map(|(name, m)| MeterDesc {
            name: name.clone(),
            rate_kbps: m.rate_kbps.0,
            burst_kb: m.burst_kb.0,
        })
        .collect();

    // Tables: unique ids, a table 0 when there are any.
    let mut table_ids: BTreeMap<u8, usize> = BTreeMap::new();
    for (ti, t) in file.tables.iter().enumerate() {
        if let Some(&first) = table_ids.get(&t.id) {
            let at = cx.pos.value(&format!("tables[{ti}].id"));
            let first = cx.pos.value(&format!("tables[{first}].id"));
            cx.dup("table id", t.id.to_string(), at, first);
        } else {
            table_ids.insert(t.id, ti);
        }
    }
    if !file.tables.is_empty() && !table_ids.contains_key(&0) {
        cx.errors.push(ModelError::NoTableZero {
            at: cx.pos.key("tables"),
        });
    }

    // Flows, table by table in id order.
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut flows = Vec::new();
    let mut flow_at = Vec::new();
    let mut flow_paths = Vec::new();
    let mut tables = Vec::new();
    let mut goto_targets: HashSet<u8> = HashSet::new();
    for (&tid, &ti) in &table_ids {
        let Some(table) = file.tables.get(ti) else {
            continue;
        };
        let mut desc = TableDesc {
            id: tid,
            flows: Vec::new(),
        };
        for (fi, f) in table.flows.iter().enumerate() {
            let path = format!("tables[{ti}].flows[{fi}]");
            if f.name.is_empty() || f.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.errors.push(ModelError::Invalid {
                    at: cx.pos.value(&format!("{path}.name")),
                    msg: format!(
                        "flow name `{}` must be non-empty, without spaces or control characters",
                        f.name
                    ),
                });
            }
            if let Some(first) = names.get(f.name.as_str()) {
                let at = cx.pos.value(&format!("{path}.name"));
                let first = cx.pos.value(&format!("{first}.name"));
                cx.dup("flow name", f.name.clone(), at, first);
            } else {
                names.insert(&f.name, path.clone());
            }

            let env = FlowEnv {
                ports: &ports,
                meters: &meters,
                table_ids: &table_ids,
                dir,
            };
            let lowered = lower_flow(
                f,
                tid,
                &path,
                &env,
                &mut filters,
                &mut action_programs,
                &mut goto_targets,
                cx,
            );
            if let Some(spec) = lowered {
                desc.flows.push(flows.len());
                flows.push(spec);
                flow_at.push(cx.pos.value(&path));
                flow_paths.push(path);
            }
        }
        tables.push(desc);
    }

    for t in &tables {
        if t.id != 0 && !goto_targets.contains(&t.id) {
            let ti = table_ids.get(&t.id).copied().unwrap_or(0);
            cx.warnings.push(Warning {
                at: cx.pos.value(&format!("tables[{ti}].id")),
                msg: format!(
                    "table {} is never reached: no flow does goto_table {}",
                    t.id, t.id
                ),
            });
        }
    }
    check_overlaps(&flows, &flow_at, &mut cx.errors);

    let (ports_known, port_list) = match ports.ports {
        Some(p) => (true, p),
        None => (false, Vec::new()),
    };
    SwitchPlan {
        name: file.switch.name.0.clone(),
        source: src,
        threads: file
            .switch
            .threads
            .map_or_else(default_threads, |t| usize::from(t.0)),
        busy_poll_us: file
            .switch
            .busy_poll_us
            .map_or(datapath::dp::switch::DEFAULT_BUSY_POLL_US, |b| b.0),
        miss: file.switch.miss,
        ports: port_list,
        ports_known,
        meters,
        tables,
        flows,
        flow_at,
        filters: filters.0,
        action_programs: action_programs.0,
        warnings: std::mem::take(&mut cx.warnings),
    }
}

/// What a flow's references resolve against.
pub(crate) struct FlowEnv<'a> {
    pub ports: &'a PortTable,
    pub meters: &'a [MeterDesc],
    /// Table id → its index in the file.
    pub table_ids: &'a BTreeMap<u8, usize>,
    /// The switch file's directory (eBPF paths are relative to it).
    pub dir: &'a Path,
}

/// Lowers one flow written at `path` (`""` for a document that is the
/// flow itself) of table `table`: its match, filter and actions. `None`
/// after reporting errors in `cx` (a match that cannot be lowered).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_flow(
    f: &super::switch::FlowEntry,
    table: u8,
    path: &str,
    env: &FlowEnv<'_>,
    filters: &mut Programs,
    action_programs: &mut Programs,
    goto_targets: &mut HashSet<u8>,
    cx: &mut Cx,
) -> Option<FlowSpec> {
    let mpath = format!("{path}.match");
    let in_port = f
        .matches
        .in_port
        .as_ref()
        .and_then(|p| match env.ports.resolve(p) {
            Ok(id) => Some(id),
            Err(hint) => {
                cx.errors.push(ModelError::UndefinedPort {
                    at: cx.pos.value(&format!("{mpath}.in_port")),
                    port: p.to_string(),
                    hint,
                });
                None
            }
        });
    let filter = f.matches.ebpf.as_ref().and_then(|r| {
        let at = cx.pos.value(&format!("{mpath}.ebpf"));
        resolve_ebpf(r, env.dir, &format!("{mpath}.ebpf"), cx).map(|r| filters.add(r, at))
    });
    let matches = lower_match(&f.matches, in_port, &mpath, cx.pos, &mut cx.errors);
    let actions = lower_actions(
        f,
        table,
        path,
        env.ports,
        env.meters,
        env.table_ids,
        env.dir,
        action_programs,
        goto_targets,
        cx,
    );
    Some(FlowSpec {
        name: f.name.clone(),
        table,
        priority: f.priority.0,
        matches: matches?,
        filter,
        actions,
        idle_timeout: f.idle_timeout,
        hard_timeout: f.hard_timeout,
    })
}

#[allow(clippy::too_many_arguments)]
fn lower_actions(
    f: &super::switch::FlowEntry,
    table: u8,
    path: &str,
    ports: &PortTable,
    meters: &[MeterDesc],
    table_ids: &BTreeMap<u8, usize>,
    dir: &Path,
    programs: &mut Programs,
    goto_targets: &mut HashSet<u8>,
    cx: &mut Cx,
) -> Vec<Action> {
    let mut out = Vec::new();
    let n = f.actions.len();
    for (ai, a) in f.actions.iter().enumerate() {
        let apath = format!("{path}.actions[{ai}]");
        let kpath = format!("{apath}.{}", a.keyword());
        let port = |p: &PortRef, at: &str, cx: &mut Cx| match ports.resolve(p) {
            Ok(id) => Some(id),
            Err(hint) => {
                cx.errors.push(ModelError::UndefinedPort {
                    at: cx.pos.value(at),
                    port: p.to_string(),
                    hint,
                });
                None
            }
        };
        if matches!(a, ActionSpec::Drop | ActionSpec::GotoTable(_)) && ai + 1 < n {
            cx.errors.push(ModelError::NotLast {
                at: cx.pos.value(&apath),
                action: a.keyword(),
            });
        }
        let lowered = match a {
            ActionSpec::Output(list) => {
                let mut ids = Vec::new();
                let many = list.0.len() > 1;
                for (pi, p) in list.0.iter().enumerate() {
                    let at = if many {
                        format!("{kpath}[{pi}]")
                    } else {
                        kpath.clone()
                    };
                    if let Some(id) = port(p, &at, cx) {
                        if ids.contains(&id) {
                            cx.errors.push(ModelError::Invalid {
                                at: cx.pos.value(&at),
                                msg: format!("port `{p}` is listed twice in this output"),
                            });
                        }
                        ids.push(id);
                    }
                }
                Some(Action::Output(ids))
            }
            ActionSpec::InPort => Some(Action::InPort),
            ActionSpec::Flood => Some(Action::Flood),
            ActionSpec::Normal => Some(Action::Normal),
            ActionSpec::Drop => Some(Action::Drop),
            ActionSpec::SetField(s) => Some(Action::SetField(set_fields(s))),
            ActionSpec::PushVlan(p) => Some(Action::PushVlan {
                vid: p.vid.0,
                pcp: p.pcp.0,
            }),
            ActionSpec::PopVlan => Some(Action::PopVlan),
            ActionSpec::DecTtl => Some(Action::DecTtl),
            ActionSpec::Meter(name) => match meters.iter().position(|m| m.name == name.0) {
                Some(i) => Some(Action::Meter(i as u32)),
                None => {
                    cx.errors.push(ModelError::UnknownMeter {
                        at: cx.pos.value(&kpath),
                        name: name.0.clone(),
                    });
                    None
                }
            },
            ActionSpec::Mirror(p) => port(p, &kpath, cx).map(Action::Mirror),
            ActionSpec::GotoTable(to) => {
                let at = cx.pos.value(&kpath);
                if *to <= table {
                    cx.errors.push(ModelError::GotoNotForward {
                        at,
                        from: table,
                        to: *to,
                    });
                    None
                } else if !table_ids.contains_key(to) {
                    cx.errors.push(ModelError::GotoMissing { at, to: *to });
                    None
                } else {
                    goto_targets.insert(*to);
                    Some(Action::GotoTable(*to))
                }
            }
            ActionSpec::Ebpf(r) => {
                let at = cx.pos.value(&kpath);
                resolve_ebpf(r, dir, &kpath, cx).map(|r| Action::Ebpf(programs.add(r, at)))
            }
        };
        out.extend(lowered);
    }
    out
}
