//! `flowswitch trace FILE --in-port P --frame HEX [...] [--engine jit|interp] [--json]`:
//! runs frames through a fresh in-process datapath built from a switch file
//! (or a topology file's switch, with the hosts as ports) and reports, per
//! frame, the flow chosen in each table, its actions, every frame sent and
//! the drop reason.
//!
//! The frames run in order through one datapath, so the MAC table and the
//! meters carry over from one frame to the next. Time is simulated: frame
//! `i` (from 0) arrives at `i` milliseconds ([`FRAME_INTERVAL_NS`]), so the
//! output never depends on the machine.
//!
//! `--json` prints one array with an object per input frame:
//! `{"tables":[{"table":0,"flow":"NAME"}],"outputs":[{"port":2,"frame":"HEX"}],"drop_reason":null}`.
//! `flow` is `null` in a table where nothing matched (the miss policy
//! applied); `drop_reason` is a string whenever the packet was dropped
//! (always when nothing was sent; also when a copy went out before a drop,
//! as with a mirror before a meter).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use datapath::dp::pipeline::PacketTrace;
use datapath::dp::pipeline::WorkerConfig;
use datapath::dp::port::{Frame, PortId};
use datapath::flow::spec::{Action, SetField};
use serde::{Deserialize, Serialize};

use crate::dataplane::{self, EngineOpt};
use crate::model::{self, Loaded, SwitchPlan, TopologyPlan};

/// Simulated time between two frames.
pub const FRAME_INTERVAL_NS: u64 = 1_000_000;

/// One input frame and the port it enters on (an id, or a port name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub in_port: String,
    pub frame: Vec<u8>,
}

/// The flow chosen in one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableHit {
    pub table: u8,
    /// `None`: no flow matched.
    pub flow: Option<String>,
}

/// One frame sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub port: PortId,
    /// Lowercase hex.
    pub frame: String,
}

/// What happened to one input frame (the `--json` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameTrace {
    pub tables: Vec<TableHit>,
    pub outputs: Vec<Sent>,
    pub drop_reason: Option<String>,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses hex bytes; `:`, `-`, `_` and white space between digits are
/// ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b':' | b'-' | b'_') && !b.is_ascii_whitespace())
        .collect();
    if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(format!(
            "`{text}`: `{}` is not a hex digit",
            char::from(*bad)
        ));
    }
    if digits.len() & 1 != 0 {
        return Err(format!(
            "`{text}`: odd number of hex digits ({})",
            digits.len()
        ));
    }
    if digits.is_empty() {
        return Err("empty frame".into());
    }
    let val = |d: u8| char::from(d).to_digit(16).unwrap_or(0) as u8;
    Ok(digits
        .chunks(2)
        .map(|p| match p {
            [h, l] => val(*h) << 4 | val(*l),
            _ => 0,
        })
        .collect())
}

/// The id of port `p` (an id, or a port name of the switch).
pub fn resolve_port(plan: &SwitchPlan, p: &str) -> Result<PortId, String> {
    if let Ok(id) = p.parse::<PortId>() {
        if plan.ports_known && !plan.ports.iter().any(|d| d.id == id) {
            return Err(format!(
                "--in-port {p}: no port with id {id}{}",
                known(plan)
            ));
        }
        return Ok(id);
    }
    plan.ports
        .iter()
        .find(|d| d.name == p)
        .map(|d| d.id)
        .ok_or_else(|| format!("--in-port {p}: no port of that name{}", known(plan)))
}

fn known(plan: &SwitchPlan) -> String {
    if plan.ports.is_empty() {
        String::new()
    } else {
        let l: Vec<String> = plan
            .ports
            .iter()
            .map(|d| format!("{} {}", d.id, d.name))
            .collect();
        format!(" (ports: {})", l.join(", "))
    }
}

/// Traces `inputs` through a fresh datapath for a loaded switch or
/// topology file.
pub fn trace_loaded(
    loaded: &Loaded,
    inputs: &[Input],
    engine: EngineOpt,
) -> Result<Vec<FrameTrace>, Vec<String>> {
    let (plan, topology): (&SwitchPlan, Option<&TopologyPlan>) = match loaded {
        Loaded::Switch(s) => (s, None),
        Loaded::Topology(t) => (&t.switch, Some(t)),
    };
    let in_ports = inputs
        .iter()
        .map(|i| resolve_port(plan, &i.in_port))
        .collect::<Result<Vec<PortId>, String>>()
        .map_err(|e| vec![e])?;
    let generation = Arc::new(dataplane::build_generation(plan, engine.engine(), 1)?);
    let ids = dataplane::port_ids(plan, &in_ports);
    let (dp, _mems) = dataplane::mem_datapath(plan, topology, &ids, Arc::clone(&generation))
        .map_err(|e| vec![e])?;
    let Some(mut worker) = dp.worker(0, WorkerConfig::default()) else {
        return Err(vec!["no worker".into()]);
    };
    let mut out = Vec::with_capacity(inputs.len());
    for (i, (input, &port)) in inputs.iter().zip(&in_ports).enumerate() {
        let mut frame = Frame::from_bytes(&input.frame);
        let t = worker.trace(&mut frame, port, i as u64 * FRAME_INTERVAL_NS);
        out.push(report(&generation, &t));
    }
    Ok(out)
}

/// A worker's trace of one packet in the report's terms (flow names).
pub fn report(g: &datapath::dp::pipeline::Generation, t: &PacketTrace) -> FrameTrace {
    FrameTrace {
        tables: t
            .steps
            .iter()
            .map(|s| TableHit {
                table: s.table,
                flow: s.flow.and_then(|f| g.flow(f)).map(|f| f.name.to_string()),
            })
            .collect(),
        outputs: t
            .outputs
            .iter()
            .map(|o| Sent {
                port: o.port,
                frame: hex(&o.frame),
            })
            .collect(),
        drop_reason: t.drop.map(|r| r.name().to_string()),
    }
}

/// Loads `path` and traces `inputs` through it.
pub fn trace_file(
    path: &Path,
    inputs: &[Input],
    engine: EngineOpt,
) -> Result<(Loaded, Vec<FrameTrace>), Vec<String>> {
    let loaded =
        model::load(path).map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let traces = trace_loaded(&loaded, inputs, engine)?;
    Ok((loaded, traces))
}

/// The `--json` text: one line.
pub fn to_json(traces: &[FrameTrace]) -> String {
    serde_json::to_string(traces).unwrap_or_else(|e| format!("\"{e}\""))
}

fn mac(v: u64) -> String {
    let b = v.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

fn set_field(f: &SetField) -> String {
    match *f {
        SetField::EthSrc(v) => format!("eth_src: {}", mac(v)),
        SetField::EthDst(v) => format!("eth_dst: {}", mac(v)),
        SetField::Ipv4Src(v) => format!("ipv4_src: {}", Ipv4Addr::from(v)),
        SetField::Ipv4Dst(v) => format!("ipv4_dst: {}", Ipv4Addr::from(v)),
        SetField::Ipv6Src(v) => format!("ipv6_src: {}", Ipv6Addr::from(v)),
        SetField::Ipv6Dst(v) => format!("ipv6_dst: {}", Ipv6Addr::from(v)),
        SetField::IpDscp(v) => format!("ip_dscp: {v}"),
        SetField::TcpSrc(v) => format!("tcp_src: {v}"),
        SetField::TcpDst(v) => format!("tcp_dst: {v}"),
        SetField::UdpSrc(v) => format!("udp_src: {v}"),
        SetField::UdpDst(v) => format!("udp_dst: {v}"),
        SetField::VlanVid(v) => format!("vlan_vid: {v}"),
        SetField::VlanPcp(v) => format!("vlan_pcp: {v}"),
    }
}

/// An action as the switch file would write it (ports by id, meters and
/// programs by name).
pub fn action_text(plan: &SwitchPlan, a: &Action) -> String {
    match a {
        Action::Output(ps) => match ps.as_slice() {
            [p] => format!("output {p}"),
            _ => format!(
                "output [{}]",
                ps.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        Action::InPort => "in_port".into(),
        Action::Flood => "flood".into(),
        Action::Normal => "normal".into(),
        Action::Drop => "drop".into(),
        Action::SetField(fs) => format!(
            "set_field {{{}}}",
            fs.iter().map(set_field).collect::<Vec<_>>().join(", ")
        ),
        Action::PushVlan { vid, pcp } => format!("push_vlan {{vid: {vid}, pcp: {pcp}}}"),
        Action::PopVlan => "pop_vlan".into(),
        Action::DecTtl => "dec_ttl".into(),
        Action::Meter(m) => match plan.meters.get(*m as usize) {
            Some(d) => format!("meter {}", d.name),
            None => format!("meter #{m}"),
        },
        Action::Mirror(p) => format!("mirror {p}"),
        Action::GotoTable(t) => format!("goto_table {t}"),
        Action::Ebpf(i) => match plan.action_programs.get(*i as usize) {
            Some(p) => format!("ebpf {}", p.source.path().display()),
            None => format!("ebpf #{i}"),
        },
    }
}

/// The human-readable report.
pub fn to_text(loaded: &Loaded, inputs: &[Input], traces: &[FrameTrace]) -> String {
    let plan = loaded.switch();
    let mut s = String::new();
    for (i, (input, t)) in inputs.iter().zip(traces).enumerate() {
        let at_ms = i as u64 * FRAME_INTERVAL_NS / 1_000_000;
        frame_text(&mut s, plan, i + 1, input, at_ms, t);
    }
    s
}

/// Appends the report of frame number `n` (from 1), which arrived at
/// `at_ms`, to `s` (also the live `ctl trace`'s report).
pub fn frame_text(
    s: &mut String,
    plan: &SwitchPlan,
    n: usize,
    input: &Input,
    at_ms: u64,
    t: &FrameTrace,
) {
    let _ = writeln!(
        s,
        "frame {n}: in_port {}, {} bytes, t = {at_ms} ms",
        input.in_port,
        input.frame.len(),
    );
    for h in &t.tables {
        match h.flow.as_deref().and_then(|n| plan.flow(n)) {
            Some(f) => {
                let actions: Vec<String> = f.actions.iter().map(|a| action_text(plan, a)).collect();
                let actions = if actions.is_empty() {
                    "(no actions: drop)".to_string()
                } else {
                    actions.join(", ")
                };
                let _ = writeln!(
                    s,
                    "  table {}: flow {} (priority {}): {actions}",
                    h.table, f.name, f.priority
                );
            }
            None => {
                let _ = writeln!(s, "  table {}: no match: miss {}", h.table, plan.miss);
            }
        }
    }
    for o in &t.outputs {
        let _ = writeln!(
            s,
            "  sent to port {} ({} bytes): {}",
            o.port,
            o.frame.len() / 2,
            o.frame
        );
    }
    if let Some(r) = &t.drop_reason {
        let _ = writeln!(s, "  dropped: {r}");
    }
}

/// Runs the verb.
pub fn run(path: &Path, inputs: &[Input], engine: EngineOpt, json: bool) -> ExitCode {
    match trace_file(path, inputs, engine) {
        Ok((loaded, traces)) => {
            if json {
                println!("{}", to_json(&traces));
            } else {
                print!("{}", to_text(&loaded, inputs, &traces));
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}
