//! The `flowswitch up` verb: a topology around a [`RunningSwitch`] on TAP
//! devices, its checks, and the teardown.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datapath::ebpf::engine::Engine;

use super::{bring_up, checks, HostVlan, UpOpts};
use crate::run::{RunOptions, RunningSwitch};

/// Stops the switch when the topology is torn down.
struct Running(Option<RunningSwitch>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.stop();
        }
    }
}

/// `flowswitch up FILE [--check]`: exit 0 when the topology came up and,
/// with `--check`, every check passed.
pub fn run(path: &Path, opts: &UpOpts, engine: Engine) -> ExitCode {
    // SIGINT/SIGTERM set the flag (registered first, so a Ctrl-C during
    // the set-up still tears down what was made).
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("flowswitch up: signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let start = |plan: &crate::model::SwitchPlan, vlans: &[HostVlan]| {
        let run_opts = RunOptions {
            engine,
            host_vlans: vlans.to_vec(),
            ..RunOptions::default()
        };
        RunningSwitch::start(plan, &run_opts).map(|s| Running(Some(s)))
    };
    let up = match bring_up(path, opts, start) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("flowswitch up: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hosts: Vec<String> = up
        .topo
        .hosts
        .iter()
        .zip(&up.names)
        .map(|(h, n)| format!("{} ({}, {})", h.name, h.ip, n.namespace))
        .collect();
    eprintln!("topology {} is up: {}", up.topo.name, hosts.join(", "));
    if opts.check {
        let results = up.run_checks();
        checks::print_table(&results);
        let ok = results.iter().all(|r| r.ok);
        eprintln!("tearing down...");
        drop(up);
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    eprintln!(
        "run commands in a host with `ip netns exec NAMESPACE ...`; Ctrl-C tears everything down"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("tearing down...");
    drop(up);
    ExitCode::SUCCESS
}
