//! The checks of `flowswitch up --check`: `pingall`, `iperf` and
//! `expect_no_ping`, run from inside the hosts' namespaces.
//!
//! - `pingall` pings every host from every other one (`ping -c 1`, up to
//!   three tries, so that a first ARP exchange cannot fail it) and prints
//!   the matrix. Pairs that an `expect_no_ping` check names, in either
//!   direction, are expected to fail; every other pair must answer.
//! - `iperf` runs iperf3 (a one-off server in `to`, the client in `from`)
//!   and reads the received rate from its JSON; without iperf3 it runs the
//!   built-in bulk test ([`super::bulk`]) the same way.
//! - `expect_no_ping` passes when two echo requests get no answer.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::model::{CheckSpec, HostPlan};

use super::bulk::BulkResult;
use super::netns::Netns;

/// Tries per pair in `pingall`.
const PING_TRIES: usize = 3;
/// The TCP port of the iperf checks.
pub const IPERF_PORT: u16 = 5201;

/// A host as the checks see it: its plan and its namespace.
pub struct HostNs<'a> {
    pub plan: &'a HostPlan,
    pub ns: &'a Netns,
}

/// One line of the results table.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

fn ip_of(h: &HostPlan) -> String {
    h.ip.ip().to_string()
}

/// Whether `from` gets an echo reply from `to` within `tries` tries of
/// one request each.
pub fn ping(from: &HostNs<'_>, to: &HostNs<'_>, tries: usize) -> bool {
    (0..tries).any(|_| {
        from.ns
            .cmd("ping")
            .args(["-c", "1", "-W", "1", "-q", &ip_of(to.plan)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether a tool is on the PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// The pairs (from, to) that `expect_no_ping` checks name, both ways.
fn blocked_pairs(checks: &[CheckSpec]) -> HashSet<(String, String)> {
    let mut s = HashSet::new();
    for c in checks {
        if let CheckSpec::ExpectNoPing(p) = c {
            s.insert((p.from.clone(), p.to.clone()));
            s.insert((p.to.clone(), p.from.clone()));
        }
    }
    s
}

/// `pingall`: the matrix, printed, and one result.
pub fn pingall(hosts: &[HostNs<'_>], checks: &[CheckSpec]) -> CheckResult {
    let blocked = blocked_pairs(checks);
    let mut answered = 0;
    let mut expected = 0;
    let mut wrong = Vec::new();
    println!("pingall (x: no reply; -: no reply expected):");
    for a in hosts {
        let mut row = format!("  {:<8} ->", a.plan.name);
        for b in hosts {
            if a.plan.name == b.plan.name {
                continue;
            }
            let must_fail = blocked.contains(&(a.plan.name.clone(), b.plan.name.clone()));
            let ok = ping(a, b, if must_fail { 1 } else { PING_TRIES });
            row.push(' ');
            match (ok, must_fail) {
                (true, false) => {
                    row.push_str(&b.plan.name);
                    answered += 1;
                    expected += 1;
                }
                (false, false) => {
                    row.push('x');
                    expected += 1;
                    wrong.push(format!("{} -> {}", a.plan.name, b.plan.name));
                }
                (false, true) => row.push('-'),
                (true, true) => {
                    row.push_str(&b.plan.name);
                    row.push('!');
                    wrong.push(format!("{} -> {} (should fail)", a.plan.name, b.plan.name));
                }
            }
        }
        println!("{row}");
    }
    CheckResult {
        check: "pingall".into(),
        ok: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!("{answered}/{expected} pairs answered")
        } else {
            format!(
                "{answered}/{expected} pairs answered; wrong: {}",
                wrong.join(", ")
            )
        },
    }
}

/// `expect_no_ping`.
pub fn expect_no_ping(from: &HostNs<'_>, to: &HostNs<'_>) -> CheckResult {
    let replied = from
        .ns
        .cmd("ping")
        .args(["-c", "2", "-W", "1", "-q", &ip_of(to.plan)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    CheckResult {
        check: format!("expect_no_ping {} -> {}", from.plan.name, to.plan.name),
        ok: !replied,
        detail: if replied {
            "got a reply".into()
        } else {
            "no reply, as expected".into()
        },
    }
}

/// A server process, killed and reaped if it is dropped before
/// [`Server::finish`].
struct Server(Option<Child>);

impl Server {
    /// Waits for the server to exit and returns its output.
    fn finish(mut self) -> Result<std::process::Output, String> {
        match self.0.take() {
            Some(c) => c.wait_with_output().map_err(|e| format!("server: {e}")),
            None => Err("server already reaped".into()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_server(cmd: &mut Command) -> Result<Server, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(|c| Server(Some(c)))
        .map_err(|e| format!("cannot start the server: {e}"))
}

/// The received rate of an iperf3 `-J` report.
pub fn iperf3_rate(json: &str) -> Result<f64, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("iperf3 output: {e}"))?;
    if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
        return Err(format!("iperf3: {err}"));
    }
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| "iperf3 output has no end.sum_received.bits_per_second".into())
}

fn iperf3(from: &HostNs<'_>, to: &HostNs<'_>, seconds: u32) -> Result<f64, String> {
    let port = IPERF_PORT.to_string();
    let _server = spawn_server(to.ns.cmd("iperf3").args(["-s", "-1", "-p", &port]))?;
    let secs = seconds.to_string();
    let mut last = String::new();
    // The server needs a moment to listen; the client fails fast until then.
    for _ in 0..20 {
        let out = from
            .ns
            .cmd("iperf3")
            .args(["-c", &ip_of(to.plan), "-p", &port, "-t", &secs, "-J"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run iperf3: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match iperf3_rate(&text) {
            Ok(bps) => return Ok(bps / 1e9),
            Err(e) if e.contains("Connection refused") || e.contains("unable to connect") => {
                last = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The built-in bulk test from `from` to `to`, run by the flowswitch
/// executable `exe` inside the namespaces; returns Gbit/s.
pub fn builtin(
    from: &HostNs<'_>,
    to: &HostNs<'_>,
    seconds: u32,
    exe: &std::path::Path,
) -> Result<f64, String> {
    let exe = exe.to_string_lossy().into_owned();
    let port = IPERF_PORT.to_string();
    let timeout = (u64::from(seconds) + 30).to_string();
    let server =
        spawn_server(
            to.ns
                .cmd(&exe)
                .args(["bulk-recv", "--port", &port, "--timeout", &timeout]),
        )?;
    let sent = from
        .ns
        .cmd(&exe)
        .args([
            "bulk-send",
            "--to",
            &ip_of(to.plan),
            "--port",
            &port,
            "--seconds",
            &seconds.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the sender: {e}"))?;
    if !sent.status.success() {
        return Err(String::from_utf8_lossy(&sent.stderr).trim().to_string());
    }
    let out = server.finish()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let r: BulkResult =
        serde_json::from_str(line.trim()).map_err(|e| format!("receiver said {line:?}: {e}"))?;
    Ok(r.gbit_per_s())
}

/// `iperf`: TCP from `from` to `to` for `seconds`.
pub fn iperf(from: &HostNs<'_>, to: &HostNs<'_>, seconds: u32) -> CheckResult {
    let (tool, r) = if have("iperf3") {
        ("iperf3", iperf3(from, to, seconds))
    } else {
        let r = std::env::current_exe()
            .map_err(|e| format!("own executable: {e}"))
            .and_then(|exe| builtin(from, to, seconds, &exe));
        ("built-in bulk test", r)
    };
    let check = format!("iperf {} -> {} ({seconds} s)", from.plan.name, to.plan.name);
    match r {
        Ok(gbps) if gbps > 0.0 => CheckResult {
            check,
            ok: true,
            detail: format!("{gbps:.2} Gbit/s ({tool})"),
        },
        Ok(_) => CheckResult {
            check,
            ok: false,
            detail: format!("no data went through ({tool})"),
        },
        Err(e) => CheckResult {
            check,
            ok: false,
            detail: format!("{tool}: {e}"),
        },
    }
}

/// Prints the results table.
pub fn print_table(results: &[CheckResult]) {
    let width = results
        .iter()
        .map(|r| r.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!();
    println!("{:<width$}  result  detail", "check");
    for r in results {
        println!(
            "{:<width$}  {:<6}  {}",
            r.check,
            if r.ok { "ok" } else { "FAIL" },
            r.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_json() {
        let ok = r#"{"start":{},"end":{"sum_received":{"bits_per_second":9.5e9}}}"#;
        assert_eq!(iperf3_rate(ok), Ok(9.5e9));
        let err = r#"{"start":{},"error":"unable to connect to server: Connection refused"}"#;
        assert!(iperf3_rate(err).unwrap_err().contains("Connection refused"));
        assert!(iperf3_rate("not json").is_err());
        assert!(iperf3_rate(r#"{"end":{}}"#).is_err());
    }
}
