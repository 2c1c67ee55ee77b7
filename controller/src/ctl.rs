//! `flowswitch ctl NAME|SOCKET VERB [ARGS]`: talks to a running switch's
//! control socket ([`crate::control`]). NAME is a switch name (the socket
//! `RUN_DIR/NAME.sock`); anything with a `/` is a socket path. Output is
//! human-readable, or with `--json` the response's result as the switch
//! sent it (for `trace`, the offline trace's JSON array). An error
//! response or a failed connection prints on stderr and exits 1.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::control::client::Client;
use crate::control::{run_dir, socket_path, Request};
use crate::switchd::show::{ChangeReport, FlowRow, PortCounts, PortRow, StatsReport};

/// The verbs of `flowswitch ctl`.
#[derive(Debug, Clone, Subcommand)]
pub enum CtlVerb {
    /// Every flow: table, name, priority, match, actions, packets, bytes, idle age.
    DumpFlows,
    /// rx, tx and drops per port and queue.
    DumpPorts,
    /// Add a flow, written as in a switch file: '{name: N, priority: P, match: {...}, actions: [...]}'.
    AddFlow {
        /// The table to add it to.
        #[arg(long, default_value_t = 0)]
        table: u8,
        flow: String,
    },
    /// Delete the flow --name N, or every flow of --table T.
    DelFlows {
        #[arg(long, conflicts_with = "table", required_unless_present = "table")]
        name: Option<String>,
        #[arg(long)]
        table: Option<u8>,
    },
    /// Reload the switch file (or load FILE instead).
    Reload { file: Option<PathBuf> },
    /// Table lookups, drops by reason, generation and reloads.
    Stats,
    /// A frame through the live tables (nothing is sent or learned).
    Trace {
        #[arg(long = "in-port", value_name = "P")]
        in_port: String,
        #[arg(long, value_name = "HEX")]
        frame: String,
    },
}

/// The socket `target` names.
pub fn target_socket(target: &str, dir: Option<&std::path::Path>) -> PathBuf {
    if target.contains('/') {
        PathBuf::from(target)
    } else {
        socket_path(&run_dir(dir), target)
    }
}

fn request(verb: &CtlVerb) -> Result<Request, String> {
    Ok(match verb {
        CtlVerb::DumpFlows => Request::DumpFlows {},
        CtlVerb::DumpPorts => Request::DumpPorts {},
        CtlVerb::Stats => Request::Stats {},
        CtlVerb::AddFlow { table, flow } => Request::AddFlow {
            table: *table,
            flow: flow.clone(),
        },
        CtlVerb::DelFlows { name, table } => Request::DelFlows {
            name: name.clone(),
            table: *table,
        },
        CtlVerb::Reload { file } => Request::Reload {
            file: match file {
                Some(f) => Some(
                    std::path::absolute(f)
                        .map_err(|e| format!("{}: {e}", f.display()))?
                        .display()
                        .to_string(),
                ),
                None => None,
            },
        },
        CtlVerb::Trace { in_port, frame } => Request::Trace {
            in_port: in_port.clone(),
            frame: frame.clone(),
        },
    })
}

fn parse<T: DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("unexpected response: {e}"))
}

fn age(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{}.{:03}s", ms / 1000, ms % 1000),
        None => "never".into(),
    }
}

fn flows_text(rows: &[FlowRow]) -> String {
    let mut s = String::new();
    for r in rows {
        let mut timeouts = String::new();
        if r.idle_timeout != 0 {
            let _ = write!(timeouts, " idle_timeout={}s", r.idle_timeout);
        }
        if r.hard_timeout != 0 {
            let _ = write!(timeouts, " hard_timeout={}s", r.hard_timeout);
        }
        let _ = writeln!(
            s,
            "table={} priority={} name={}{} packets={} bytes={} idle_age={}{timeouts}\n    match: {}\n    actions: {}",
            r.table,
            r.priority,
            r.name,
            if r.runtime { " (added)" } else { "" },
            r.packets,
            r.bytes,
            age(r.idle_age_ms),
            r.matches,
            if r.actions.is_empty() {
                "drop".to_string()
            } else {
                r.actions.join(", ")
            },
        );
    }
    s
}

fn counts(c: &PortCounts) -> String {
    format!(
        "rx {} pkts {} bytes {} drops, tx {} pkts {} bytes {} drops",
        c.rx_packets, c.rx_bytes, c.rx_drops, c.tx_packets, c.tx_bytes, c.tx_drops
    )
}

fn ports_text(rows: &[PortRow]) -> String {
    let mut s = String::new();
    for p in rows {
        let _ = writeln!(
            s,
            "port {} {}{}: {}",
            p.id,
            p.name,
            if p.up { "" } else { " (down)" },
            counts(&p.total)
        );
        if p.queues.len() > 1 {
            for (q, c) in p.queues.iter().enumerate() {
                let _ = writeln!(s, "  queue {q}: {}", counts(c));
            }
        }
    }
    s
}

fn stats_text(r: &StatsReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "switch {} ({})", r.switch, r.file);
    let _ = writeln!(
        s,
        "generation {}: {} flows ({} added at run time), {} workers",
        r.generation, r.flows, r.runtime_flows, r.workers
    );
    let _ = writeln!(s, "reloads: {} ok, {} refused", r.reloads, r.failed_reloads);
    if let Some(e) = &r.last_error {
        let _ = writeln!(s, "last refused reload:\n{e}");
    }
    for t in &r.tables {
        let _ = writeln!(
            s,
            "table {}: {} lookups, {} matched, {} missed",
            t.table, t.lookups, t.matched, t.missed
        );
    }
    if r.drops.is_empty() {
        let _ = writeln!(s, "drops: none");
    } else {
        let d: Vec<String> = r.drops.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let _ = writeln!(s, "drops: {}", d.join(", "));
    }
    s
}

fn change_text(verb: &str, r: &ChangeReport) -> String {
    let mut s = format!(
        "{verb}: generation {}, {} flows ({} kept their counters, {} new or changed, {} removed) in {} ms",
        r.generation, r.flows, r.kept, r.fresh, r.removed, r.build_ms
    );
    if !r.names.is_empty() {
        let _ = write!(s, ": {}", r.names.join(", "));
    }
    s.push('\n');
    s
}

/// The text of a successful response to `verb`.
fn render(verb: &CtlVerb, result: Value, json: bool) -> Result<String, String> {
    if json {
        if let CtlVerb::Trace { .. } = verb {
            // As the offline trace prints it (its field order).
            let t: crate::trace::FrameTrace =
                parse(result.get("trace").cloned().unwrap_or(Value::Null))?;
            return Ok(format!("{}\n", crate::trace::to_json(&[t])));
        }
        return Ok(format!("{result}\n"));
    }
    Ok(match verb {
        CtlVerb::DumpFlows => flows_text(&parse::<Vec<FlowRow>>(result)?),
        CtlVerb::DumpPorts => ports_text(&parse::<Vec<PortRow>>(result)?),
        CtlVerb::Stats => stats_text(&parse(result)?),
        CtlVerb::AddFlow { .. } => change_text("added", &parse(result)?),
        CtlVerb::DelFlows { .. } => change_text("deleted", &parse(result)?),
        CtlVerb::Reload { .. } => change_text("reloaded", &parse(result)?),
        CtlVerb::Trace { .. } => result
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// Sends `verb` to the switch `target` and prints the answer.
pub fn run(target: &str, dir: Option<&std::path::Path>, verb: &CtlVerb, json: bool) -> ExitCode {
    let path = target_socket(target, dir);
    let result = (|| -> Result<String, String> {
        let req = request(verb)?;
        let mut c = Client::connect(&path)
            .map_err(|e| format!("{}: cannot connect: {e}", path.display()))?;
        let resp = c
            .request(&req)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !resp.ok {
            return Err(resp.error.unwrap_or_else(|| "error".into()));
        }
        render(verb, resp.result.unwrap_or(Value::Null), json)
    })();
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flowswitch ctl: {e}");
            ExitCode::FAILURE
        }
    }
}
