//! `flowswitch check FILE`: loads a switch or topology file and prints a
//! summary on stdout (exit 0), or every error on stderr (exit 1).

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::model::{self, CheckSpec, Loaded, SwitchPlan, TopologyPlan};

/// What compiling a switch's flows produced, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileStats {
    /// Verified programs (flows and custom eBPF programs).
    pub programs: usize,
    /// eBPF instructions over all programs.
    pub instructions: usize,
    pub elapsed: Duration,
}

/// Compiles a loaded switch; on failure, one message per problem (each
/// naming `file:line:col` from [`SwitchPlan::flow_at`] or
/// [`model::EbpfProgram::at`]).
pub type CompileHook = fn(&SwitchPlan) -> Result<CompileStats, Vec<String>>;

/// The hook through which the flow compiler adds "instructions compiled" to
/// the summary and its errors to the report: every flow is compiled,
/// verified and JIT-compiled ([`crate::dataplane::compile_hook`]).
pub const COMPILE: Option<CompileHook> = Some(crate::dataplane::compile_hook);

/// Runs the verb with the process's stdout and stderr.
pub fn run(path: &Path) -> ExitCode {
    let (out, err) = (std::io::stdout(), std::io::stderr());
    let ok = report(path, COMPILE, &mut out.lock(), &mut err.lock());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Loads `path`, writes the summary to `out` or the errors to `err`
/// (warnings go to `err` too). Returns whether the file is valid.
pub fn report(
    path: &Path,
    compile: Option<CompileHook>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    // Write errors on stdout/stderr are ignored: there is nowhere to report them.
    match model::load(path) {
        Err(errors) => {
            for e in &errors.0 {
                let _ = writeln!(err, "{e}");
            }
            let n = errors.0.len();
            let _ = writeln!(err, "{}: {n} error{}", path.display(), plural(n));
            false
        }
        Ok(loaded) => {
            let (switch, mut text) = match &loaded {
                Loaded::Switch(s) => (s, String::new()),
                Loaded::Topology(t) => (&t.switch, topology_summary(t)),
            };
            for w in warnings(&loaded) {
                let _ = writeln!(err, "{w}");
            }
            text.push_str(&switch_summary(switch));
            let mut ok = true;
            if let Some(hook) = compile {
                match hook(switch) {
                    Ok(s) => {
                        let _ = writeln!(
                            text,
                            "  compiled  {} program{}, {} instructions in {:.1} ms",
                            s.programs,
                            plural(s.programs),
                            s.instructions,
                            s.elapsed.as_secs_f64() * 1e3
                        );
                    }
                    Err(msgs) => {
                        for m in &msgs {
                            let _ = writeln!(err, "{m}");
                        }
                        let n = msgs.len();
                        let _ = writeln!(err, "{}: {n} error{}", path.display(), plural(n));
                        ok = false;
                    }
                }
            }
            if ok {
                let flows = switch.flows.len();
                let _ = write!(out, "{text}");
                let _ = writeln!(
                    out,
                    "ok: {} table{}, {flows} flow{}",
                    switch.tables.len(),
                    plural(switch.tables.len()),
                    plural(flows)
                );
            }
            ok
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn warnings(l: &Loaded) -> Vec<&model::Warning> {
    match l {
        Loaded::Switch(s) => s.warnings.iter().collect(),
        Loaded::Topology(t) => t.warnings.iter().chain(&t.switch.warnings).collect(),
    }
}

/// The summary lines of a topology (its switch follows).
pub fn topology_summary(t: &TopologyPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: topology `{}`", t.source.display(), t.name);
    let hosts: Vec<String> = t
        .hosts
        .iter()
        .map(|h| {
            let vlan = h.vlan.map(|v| format!(", vlan {v}")).unwrap_or_default();
            format!("{} (port {}, {}, {}{vlan})", h.name, h.port, h.ip, h.mac)
        })
        .collect();
    let _ = writeln!(s, "  hosts     {}: {}", hosts.len(), hosts.join(", "));
    let checks: Vec<String> = t
        .checks
        .iter()
        .map(|c| match c {
            CheckSpec::Pingall => "pingall".to_string(),
            CheckSpec::Iperf(i) => format!("iperf {} -> {} {} s", i.from, i.to, i.seconds.0),
            CheckSpec::ExpectNoPing(p) => format!("expect_no_ping {} -> {}", p.from, p.to),
        })
        .collect();
    let _ = writeln!(s, "  checks    {}: {}", checks.len(), checks.join(", "));
    s
}

/// The summary lines of a switch: threads, miss, ports, meters, tables.
pub fn switch_summary(p: &SwitchPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: switch `{}`", p.source.display(), p.name);
    let _ = writeln!(s, "  threads   {}", p.threads);
    let _ = writeln!(s, "  miss      {}", p.miss);
    if p.ports_known {
        let ports: Vec<String> = p
            .ports
            .iter()
            .map(|d| format!("{} {}", d.id, d.name))
            .collect();
        let _ = writeln!(s, "  ports     {}: {}", ports.len(), ports.join(", "));
    } else {
        let _ = writeln!(
            s,
            "  ports     none declared (port ids unchecked; a topology provides them)"
        );
    }
    let meters: Vec<String> = p
        .meters
        .iter()
        .map(|m| format!("{} ({} kbps, burst {} kB)", m.name, m.rate_kbps, m.burst_kb))
        .collect();
    if meters.is_empty() {
        let _ = writeln!(s, "  meters    none");
    } else {
        let _ = writeln!(s, "  meters    {}: {}", meters.len(), meters.join(", "));
    }
    for t in &p.tables {
        let alts: usize = t
            .flows
            .iter()
            .filter_map(|&i| p.flows.get(i))
            .map(|f| f.matches.len())
            .sum();
        let _ = writeln!(
            s,
            "  table {:<3} {} flow{} ({alts} match alternative{})",
            t.id,
            t.flows.len(),
            plural(t.flows.len()),
            plural(alts)
        );
    }
    if !p.filters.is_empty() || !p.action_programs.is_empty() {
        let _ = writeln!(
            s,
            "  ebpf      {} filter program{}, {} action program{}",
            p.filters.len(),
            plural(p.filters.len()),
            p.action_programs.len(),
            plural(p.action_programs.len())
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows/example.yaml")
    }

    fn run_with(hook: Option<CompileHook>) -> (bool, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = report(&example(), hook, &mut out, &mut err);
        (
            ok,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn without_a_compiler_the_summary_has_no_compiled_line() {
        let (ok, out, err) = run_with(None);
        assert!(ok && err.is_empty(), "{err}");
        assert!(!out.contains("compiled"));
        assert!(out.ends_with("ok: 2 tables, 5 flows\n"), "{out}");
    }

    #[test]
    fn the_compile_hook_adds_its_line_or_its_errors() {
        fn good(p: &SwitchPlan) -> Result<CompileStats, Vec<String>> {
            Ok(CompileStats {
                programs: p.flows.len(),
                instructions: 10 * p.flows.len(),
                elapsed: Duration::from_micros(1500),
            })
        }
        fn bad(p: &SwitchPlan) -> Result<CompileStats, Vec<String>> {
            Err(vec![format!("{}: rejected", p.flow_at[0])])
        }
        let (ok, out, _) = run_with(Some(good));
        assert!(ok);
        assert!(
            out.contains("\n  compiled  5 programs, 50 instructions in 1.5 ms\nok: 2 tables"),
            "{out}"
        );
        let (ok, out, err) = run_with(Some(bad));
        assert!(!ok);
        assert!(out.is_empty(), "{out}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(lines[0].ends_with("example.yaml:14:9: rejected"), "{err}");
        assert!(lines[1].ends_with("example.yaml: 1 error"), "{err}");
    }
}
