//! Reading files: telling switch files from topology files, turning serde
//! errors into located errors, and building a topology (its hosts become
//! the ports of its switch file).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::error::{LoadErrors, Location, ModelError, Warning};
use super::lower::{
    declared_ports, lower_switch, normalize, relative_to, Cx, PortDesc, PortTable, SwitchPlan,
};
use super::pos::PosIndex;
use super::switch::SwitchFile;
use super::topology::{CheckSpec, TopologyFile};
use super::value::{IfaceAddr, Mac};

/// Which kind of file a document is, by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Switch,
    Topology,
}

const SWITCH_KEYS: [&str; 4] = ["switch", "ports", "meters", "tables"];
const TOPOLOGY_KEYS: [&str; 4] = ["name", "flows", "hosts", "checks"];

/// A loaded file of either kind.
#[derive(Debug, Clone)]
pub enum Loaded {
    Switch(SwitchPlan),
    Topology(TopologyPlan),
}

impl Loaded {
    /// The switch: the file's, or the topology's.
    pub fn switch(&self) -> &SwitchPlan {
        match self {
            Loaded::Switch(s) => s,
            Loaded::Topology(t) => &t.switch,
        }
    }
}

/// A host of a topology, with its MAC resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    pub name: String,
    pub port: u32,
    pub ip: IfaceAddr,
    pub mac: Mac,
    /// The host tags its frames with this VLAN id.
    pub vlan: Option<u16>,
    pub queues: u16,
    pub offload: bool,
}

/// A topology file, validated, with its switch file loaded.
#[derive(Debug, Clone)]
pub struct TopologyPlan {
    pub name: String,
    pub source: Arc<Path>,
    /// The switch file, resolved against the topology file's directory.
    pub flows_path: PathBuf,
    /// The switch; its ports are the hosts' links.
    pub switch: SwitchPlan,
    pub hosts: Vec<HostPlan>,
    pub checks: Vec<CheckSpec>,
    pub warnings: Vec<Warning>,
}

fn read(path: &Path) -> Result<String, LoadErrors> {
    crate::files::read_text(path).map_err(|source| {
        LoadErrors::one(ModelError::Read {
            path: path.to_path_buf(),
            source,
        })
    })
}

pub(crate) fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Loads a switch or topology file, deciding by its top-level keys.
pub fn load(path: &Path) -> Result<Loaded, LoadErrors> {
    let text = read(path)?;
    from_str(path, &text)
}

/// Like [`load`], from text; `path` names the file in errors and anchors
/// relative paths.
pub fn from_str(path: &Path, text: &str) -> Result<Loaded, LoadErrors> {
    let file: Arc<Path> = Arc::from(path);
    let pos = PosIndex::build(&file, text).map_err(LoadErrors)?;
    match kind(&pos)? {
        FileKind::Switch => switch_with(&pos, text, None).map(Loaded::Switch),
        FileKind::Topology => topology_with(&pos, text).map(Loaded::Topology),
    }
}

/// Loads a switch file.
pub fn load_switch(path: &Path) -> Result<SwitchPlan, LoadErrors> {
    let text = read(path)?;
    switch_from_str(path, &text)
}

/// Loads a switch file from text; `path` names it and anchors `ebpf:` paths.
pub fn switch_from_str(path: &Path, text: &str) -> Result<SwitchPlan, LoadErrors> {
    let file: Arc<Path> = Arc::from(path);
    let pos = PosIndex::build(&file, text).map_err(LoadErrors)?;
    switch_with(&pos, text, None)
}

/// Loads a topology file and the switch file it names.
pub fn load_topology(path: &Path) -> Result<TopologyPlan, LoadErrors> {
    let text = read(path)?;
    topology_from_str(path, &text)
}

/// Loads a topology from text; `path` names it and anchors `flows:`.
pub fn topology_from_str(path: &Path, text: &str) -> Result<TopologyPlan, LoadErrors> {
    let file: Arc<Path> = Arc::from(path);
    let pos = PosIndex::build(&file, text).map_err(LoadErrors)?;
    topology_with(&pos, text)
}

/// Decides the kind of a document from its top-level keys.
pub fn kind_of(path: &Path, text: &str) -> Result<FileKind, LoadErrors> {
    let file: Arc<Path> = Arc::from(path);
    let pos = PosIndex::build(&file, text).map_err(LoadErrors)?;
    kind(&pos)
}

fn kind(pos: &PosIndex) -> Result<FileKind, LoadErrors> {
    let keys = pos.top_keys();
    let sw = keys.iter().find(|(k, _)| SWITCH_KEYS.contains(&k.as_str()));
    let topo = keys
        .iter()
        .find(|(k, _)| TOPOLOGY_KEYS.contains(&k.as_str()));
    match (sw, topo) {
        (Some(_), None) => Ok(FileKind::Switch),
        (None, Some(_)) => Ok(FileKind::Topology),
        (Some((s, _)), Some((t, t_at))) => Err(LoadErrors::one(ModelError::UnknownKind {
            at: t_at.clone(),
            msg: format!(
                "`{t}` belongs in a topology file but `{s}` in a switch file: a file is one or the other"
            ),
        })),
        (None, None) => Err(LoadErrors::one(ModelError::UnknownKind {
            at: keys
                .first()
                .map(|(_, at)| at.clone())
                .unwrap_or_else(|| pos.value("")),
            msg: "neither a switch file (with `switch:` and `tables:`) nor a topology file (with `name:`, `flows:` and `hosts:`)".to_string(),
        })),
    }
}

/// serde_yaml's message without its trailing " at line L column C", and the
/// position as a [`Location`].
fn serde_error(file: &Arc<Path>, e: &serde_yaml::Error) -> ModelError {
    let mut msg = e.to_string();
    let at = match e.location() {
        Some(l) => {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(i) = msg.find(&suffix) {
                msg.replace_range(i..i + suffix.len(), "");
            }
            Location::new(file, l.line(), l.column())
        }
        None => Location::start(file),
    };
    ModelError::Schema { at, msg }
}

pub(crate) fn parse<T: DeserializeOwned>(pos: &PosIndex, text: &str) -> Result<T, LoadErrors> {
    serde_yaml::from_str(text).map_err(|e| LoadErrors::one(serde_error(pos.file(), &e)))
}

fn finish<T>(value: T, errors: Vec<ModelError>) -> Result<T, LoadErrors> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(LoadErrors(errors).sorted())
    }
}

/// Parses and lowers a switch file; `ports` overrides the file's own.
fn switch_with(
    pos: &PosIndex,
    text: &str,
    ports: Option<PortTable>,
) -> Result<SwitchPlan, LoadErrors> {
    let file: SwitchFile = parse(pos, text)?;
    let mut cx = Cx {
        pos,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let declared = declared_ports(&file, &mut cx);
    let ports = match ports {
        Some(p) => p.with_aliases(&declared),
        None => declared,
    };
    let plan = lower_switch(&file, &dir_of(pos.file()), ports, &mut cx);
    finish(plan, cx.errors)
}

fn topology_with(pos: &PosIndex, text: &str) -> Result<TopologyPlan, LoadErrors> {
    let topo: TopologyFile = parse(pos, text)?;
    let mut cx = Cx {
        pos,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let hosts = hosts(&topo, &mut cx);
    check_checks(&topo, &hosts, &mut cx);

    let flows_path = relative_to(&dir_of(pos.file()), &topo.flows);
    let ports: Vec<PortDesc> = {
        let mut v: Vec<PortDesc> = hosts
            .iter()
            .map(|h| PortDesc {
                id: h.port,
                name: h.name.clone(),
                offload: h.offload,
                queues: h.queues,
            })
            .collect();
        v.sort_by_key(|d| d.id);
        v
    };
    let origin = format!("topology `{}` (the ports are its hosts)", topo.name);
    let switch = match crate::files::read_text(&flows_path) {
        Err(e) => {
            cx.errors.push(ModelError::MissingFile {
                at: pos.value("flows"),
                path: topo.flows.clone(),
                reason: format!("cannot read {}: {e}", flows_path.display()),
            });
            None
        }
        Ok(sw_text) => {
            let sw_file: Arc<Path> = Arc::from(normalize(&flows_path).as_path());
            let sw = PosIndex::build(&sw_file, &sw_text)
                .map_err(LoadErrors)
                .and_then(|sw_pos| match kind(&sw_pos)? {
                    FileKind::Switch => {
                        switch_with(&sw_pos, &sw_text, Some(PortTable::known(ports, origin)))
                    }
                    FileKind::Topology => Err(LoadErrors::one(ModelError::Invalid {
                        at: pos.value("flows"),
                        msg: format!(
                            "`{}` is a topology file; `flows:` names a switch file",
                            topo.flows.display()
                        ),
                    })),
                });
            match sw {
                Ok(s) => Some(s),
                Err(LoadErrors(es)) => {
                    cx.errors.extend(es);
                    None
                }
            }
        }
    };
    match switch {
        Some(switch) if cx.errors.is_empty() => Ok(TopologyPlan {
            name: topo.name.0.clone(),
            source: Arc::clone(pos.file()),
            flows_path,
            switch,
            hosts,
            checks: topo.checks.clone(),
            warnings: cx.warnings,
        }),
        _ => Err(LoadErrors(cx.errors).sorted()),
    }
}

/// The hosts, with uniqueness of names, ports, addresses and MACs checked.
fn hosts(topo: &TopologyFile, cx: &mut Cx) -> Vec<HostPlan> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ports: HashMap<u32, usize> = HashMap::new();
    let mut ips: HashMap<IpAddr, usize> = HashMap::new();
    let mut macs: HashMap<u64, usize> = HashMap::new();
    for (i, h) in topo.hosts.iter().enumerate() {
        let p = |f: &str| format!("hosts[{i}].{f}");
        let dup = |cx: &mut Cx, what, name: String, field: &str, first: usize| {
            let at = cx.pos.value(&p(field));
            let first = cx.pos.value(&format!("hosts[{first}].{field}"));
            cx.dup(what, name, at, first);
        };
        let same_name = names.get(h.name.as_str()).copied();
        if let Some(f) = same_name {
            dup(cx, "host name", h.name.0.clone(), "name", f);
        } else {
            names.insert(h.name.0.clone(), i);
        }
        if let Some(&f) = ports.get(&h.port.0) {
            dup(cx, "host port", h.port.0.to_string(), "port", f);
        } else {
            ports.insert(h.port.0, i);
        }
        if let Some(&f) = ips.get(&h.ip.ip()) {
            dup(cx, "host address", h.ip.ip().to_string(), "ip", f);
        } else {
            ips.insert(h.ip.ip(), i);
        }
        let mac = h.mac_or_derived();
        let mac_field = if h.mac.is_some() { "mac" } else { "name" };
        if mac.0 & 0x0100_0000_0000 != 0 {
            cx.errors.push(ModelError::Invalid {
                at: cx.pos.value(&p("mac")),
                msg: format!("{mac} is a multicast address; a host needs a unicast MAC"),
            });
        }
        // A repeated name already has its error; its derived MAC repeats too.
        let derived_repeat = h.mac.is_none() && same_name.is_some();
        if let Some(&f) = macs.get(&mac.0).filter(|_| !derived_repeat) {
            let at = cx.pos.value(&p(mac_field));
            let first = cx.pos.value(&format!("hosts[{f}]"));
            cx.dup("host MAC", mac.to_string(), at, first);
        } else {
            macs.insert(mac.0, i);
        }
        if let Some(v) = h.vlan {
            if v.0 == 0 || v.0 == 4095 {
                cx.errors.push(ModelError::Invalid {
                    at: cx.pos.value(&p("vlan")),
                    msg: format!("vlan {} is reserved; a host's VLAN is 1..=4094", v.0),
                });
            }
        }
        out.push(HostPlan {
            name: h.name.0.clone(),
            port: h.port.0,
            ip: h.ip,
            mac,
            vlan: h.vlan.map(|v| v.0),
            queues: h.queues.0,
            offload: h.offload,
        });
    }
    out
}

/// Host names in checks must exist; an unknown `expect_no_ping` target is
/// only a warning, since such a ping can only fail.
fn check_checks(topo: &TopologyFile, hosts: &[HostPlan], cx: &mut Cx) {
    let known = |n: &str| hosts.iter().any(|h| h.name == n);
    for (i, c) in topo.checks.iter().enumerate() {
        let (key, from, to) = match c {
            CheckSpec::Pingall => continue,
            CheckSpec::Iperf(s) => ("iperf", &s.from, &s.to),
            CheckSpec::ExpectNoPing(s) => ("expect_no_ping", &s.from, &s.to),
        };
        let path = format!("checks[{i}].{key}");
        if !known(from) {
            cx.errors.push(ModelError::UnknownHost {
                at: cx.pos.value(&format!("{path}.from")),
                name: from.clone(),
            });
        }
        if !known(to) {
            let at = cx.pos.value(&format!("{path}.to"));
            if key == "expect_no_ping" {
                cx.warnings.push(Warning {
                    at,
                    msg: format!(
                        "`{to}` is not a host of this topology, so this check cannot fail"
                    ),
                });
            } else {
                cx.errors.push(ModelError::UnknownHost {
                    at,
                    name: to.clone(),
                });
            }
        }
        if from == to {
            cx.errors.push(ModelError::Invalid {
                at: cx.pos.value(&format!("{path}.to")),
                msg: format!("`{key}` from `{from}` to itself"),
            });
        }
    }
}
