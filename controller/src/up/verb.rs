//! The `flowswitch up` verb: a topology around a [`RunningSwitch`] on TAP
//! devices, its checks, and the teardown.
//!
//! While the topology is up its switch serves the control socket
//! `<run dir>/<topology name>.sock`, so `flowswitch ctl NAME ...` works
//! on it as on `flowswitch run` (dump-flows, dump-ports, add-flow, live
//! trace, reload). A reload may change the flows, not the hosts: the
//! ports stay as started, since each TAP is wired into a namespace.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datapath::ebpf::engine::Engine;

use super::{bring_up, checks, HostVlan, UpOpts};
use crate::model::SwitchPlan;
use crate::run::{RunOptions, RunningSwitch};
use crate::switchd::watch::WatchOptions;
use crate::switchd::Serving;

/// The switch of a topology that is up, with its control socket. Dropped
/// when the topology is torn down: the socket goes first, then the
/// switch stops and its TAPs go.
struct Running {
    serving: Option<Serving>,
    switch: Arc<RunningSwitch>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.serving.take();
        self.switch.stop();
    }
}

/// Compiles the topology `path`, starts its switch on the TAPs of `plan`
/// (its ports named after the hosts' TAPs) and serves its control socket
/// as `name` in `run_dir`.
fn start(
    path: &Path,
    plan: &SwitchPlan,
    vlans: &[HostVlan],
    engine: Engine,
    name: &str,
    run_dir: &Path,
) -> Result<Running, String> {
    let run_opts = RunOptions {
        engine,
        host_vlans: vlans.to_vec(),
        fixed_ports: true,
        ..RunOptions::default()
    };
    let (switch, d) = RunningSwitch::controlled_as(path, plan, &run_opts, Some(name.to_string()))?;
    let serving = match d.serve(run_dir, Some(WatchOptions::default())) {
        Ok(s) => s,
        Err(e) => {
            switch.stop();
            return Err(e.to_string());
        }
    };
    Ok(Running {
        serving: Some(serving),
        switch,
    })
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
    let up = match bring_up(path, opts, |topo, plan, vlans| {
        start(path, plan, vlans, engine, &topo.name, &opts.run_dir)
    }) {
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
    eprintln!(
        "control socket {}: `flowswitch ctl {} dump-flows` (and the other ctl verbs)",
        crate::control::socket_path(&opts.run_dir, &up.topo.name).display(),
        up.topo.name
    );
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
