//! Command-line interface: argument parsing and dispatch to the verbs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::bpf::BpfCmd;
use crate::dataplane::EngineOpt;
use crate::trace::Input;

#[derive(Debug, Parser)]
#[command(
    name = "flowswitch",
    version,
    about = "A programmable software switch with per-flow JIT-compiled eBPF"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// The eBPF toolchain: test, run, assemble, disassemble, verify, bench.
    #[command(subcommand)]
    Bpf(BpfCmd),
    /// Two in-process hosts (smoltcp) ping each other and stream TCP
    /// through the JIT-compiled pipeline; needs no root.
    Demo {
        #[arg(long, value_enum, default_value = "jit")]
        engine: EngineOpt,
        /// Echo requests from h1 to h2.
        #[arg(long, default_value_t = 4)]
        pings: u16,
        /// How long h1 streams to h2.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Stop the stream after this many bytes.
        #[arg(long)]
        bytes: Option<u64>,
    },
    /// Validate a switch file or a topology file: print a summary, or the
    /// errors (each with file:line:col) and exit 1.
    Check {
        /// A switch file (flows/*.yaml) or a topology file (topologies/*.yaml).
        file: PathBuf,
    },
    /// Run frames through a fresh in-process datapath and show, per frame,
    /// the flow chosen in each table, its actions and the frames sent.
    ///
    /// Each --frame enters on the --in-port given before it; the frames run
    /// in order (frame i at i ms), so the MAC table and meters carry over.
    Trace {
        /// A switch file, or a topology file (its switch, the hosts as ports).
        file: PathBuf,
        /// Ingress port (id or name) of the frames that follow.
        #[arg(long = "in-port", value_name = "P", required = true)]
        in_port: Vec<String>,
        /// A frame as hex bytes (`:`, `-`, `_` and spaces are ignored).
        #[arg(long, value_name = "HEX", required = true)]
        frame: Vec<String>,
        #[arg(long, value_enum, default_value = "jit")]
        engine: EngineOpt,
        /// Print a JSON array, one object per frame.
        #[arg(long)]
        json: bool,
    },
    /// Run the switch on TAP devices: create the ports of the file, forward
    /// until SIGINT or SIGTERM, then remove the TAPs and exit 0.
    Run {
        /// A switch file with `ports:`.
        file: PathBuf,
        /// Write a port's traffic (received and sent) to a pcap file.
        #[arg(long, value_name = "PORT=FILE")]
        pcap: Vec<String>,
        #[arg(long, value_enum, default_value = "jit")]
        engine: EngineOpt,
        /// Where to serve the control socket `<switch.name>.sock` (default:
        /// $FLOWSWITCH_RUN_DIR, else /run/flowswitch).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Build a topology's namespaces, TAPs and switch; with --check run its
    /// checks (pingall, iperf, expect_no_ping), print the results and tear
    /// down (exit 1 if one failed); without, stay up until Ctrl-C. Root.
    Up {
        /// A topology file (topologies/*.yaml).
        file: PathBuf,
        /// Run the checks, then tear down.
        #[arg(long)]
        check: bool,
        /// Put before every namespace and TAP name (to run a topology twice,
        /// or beside names already in use).
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, value_enum, default_value = "jit")]
        engine: EngineOpt,
        /// Where the state file and the control socket `<name>.sock` go
        /// (default: $FLOWSWITCH_RUN_DIR, else /run/flowswitch).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// Clean up after a `flowswitch up` that crashed: delete the
    /// namespaces it recorded.
    Down {
        /// The topology's `name:`.
        name: String,
        /// Where `up` kept its state (as given to `up`).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// The receiving end of the built-in TCP bulk test (run inside a
    /// host's namespace by `up --check` when iperf3 is absent).
    #[command(hide = true)]
    BulkRecv {
        #[arg(long)]
        port: u16,
        /// Give up after this many seconds without data.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// The sending end of the built-in TCP bulk test.
    #[command(hide = true)]
    BulkSend {
        #[arg(long)]
        to: std::net::IpAddr,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        seconds: f64,
    },
    /// Talk to a running switch: NAME (its socket in the run directory) or
    /// a socket path, then a verb.
    Ctl {
        /// The socket directory (default: $FLOWSWITCH_RUN_DIR, else /run/flowswitch).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
        /// Print the switch's JSON answer.
        #[arg(long, global = true)]
        json: bool,
        /// A switch name or a socket path.
        target: String,
        #[command(subcommand)]
        verb: crate::ctl::CtlVerb,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// 64-byte frames from memory ports through extract, cache, flow
    /// program and actions: Mpps per core at 10, 1,000 and 100,000 flows,
    /// compile time and resident memory.
    Pipeline {
        /// Measure this table size only.
        #[arg(long)]
        flows: Option<usize>,
        #[arg(long, value_enum, default_value = "jit")]
        engine: EngineOpt,
        /// Measuring rounds: each measures every table size in turn, so
        /// that the sizes share the machine's quiet and busy spells.
        #[arg(long, default_value_t = crate::bench_pipeline::ROUNDS,
              value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
    },
}

/// Pairs each `--frame` with the `--in-port` given before it on the
/// command line.
fn trace_inputs(
    m: &ArgMatches,
    in_port: &[String],
    frame: &[String],
) -> Result<Vec<Input>, String> {
    let port_at: Vec<usize> = m
        .indices_of("in_port")
        .map(|i| i.collect())
        .unwrap_or_default();
    let frame_at: Vec<usize> = m
        .indices_of("frame")
        .map(|i| i.collect())
        .unwrap_or_default();
    frame
        .iter()
        .zip(&frame_at)
        .map(|(hex, &at)| {
            let port = port_at
                .iter()
                .zip(in_port)
                .rfind(|(&p, _)| p < at)
                .map(|(_, name)| name.clone())
                .ok_or_else(|| format!("--frame {hex}: no --in-port before it"))?;
            let frame = crate::trace::parse_hex(hex).map_err(|e| format!("--frame {e}"))?;
            Ok(Input {
                in_port: port,
                frame,
            })
        })
        .collect()
}

/// Parses the command line and runs the verb. Errors print on stderr and give exit code 1.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.cmd {
        Cmd::Bpf(cmd) => crate::bpf::run(cmd),
        Cmd::Demo {
            engine,
            pings,
            seconds,
            bytes,
        } => Ok(crate::demo::run(&crate::demo::DemoOpts {
            engine,
            pings,
            seconds,
            bytes,
        })),
        Cmd::Check { file } => Ok(crate::check::run(&file)),
        Cmd::Trace {
            file,
            in_port,
            frame,
            engine,
            json,
        } => {
            let sub = matches.subcommand_matches("trace");
            match sub.map(|m| trace_inputs(m, &in_port, &frame)) {
                Some(Ok(inputs)) => Ok(crate::trace::run(&file, &inputs, engine, json)),
                Some(Err(e)) => {
                    eprintln!("flowswitch trace: {e}");
                    Ok(ExitCode::FAILURE)
                }
                None => Ok(ExitCode::FAILURE),
            }
        }
        Cmd::Up {
            file,
            check,
            prefix,
            engine,
            run_dir,
        } => Ok(crate::up::run(
            &file,
            &crate::up::UpOpts {
                check,
                prefix,
                run_dir: crate::control::run_dir(run_dir.as_deref()),
            },
            engine.engine(),
        )),
        Cmd::Down { name, run_dir } => Ok(
            match crate::up::down(&crate::control::run_dir(run_dir.as_deref()), &name) {
                Ok(deleted) => {
                    println!("{name}: deleted {} namespaces", deleted.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("flowswitch down: {e}");
                    ExitCode::FAILURE
                }
            },
        ),
        Cmd::BulkRecv { port, timeout } => Ok(crate::up::bulk::recv_main(port, timeout)),
        Cmd::BulkSend { to, port, seconds } => Ok(crate::up::bulk::send_main(to, port, seconds)),
        Cmd::Ctl {
            run_dir,
            json,
            target,
            verb,
        } => Ok(crate::ctl::run(&target, run_dir.as_deref(), &verb, json)),
        Cmd::Run {
            file,
            pcap,
            engine,
            run_dir,
        } => Ok(crate::run::run(&file, &pcap, engine, run_dir.as_deref())),
        Cmd::Bench(BenchCmd::Pipeline {
            flows,
            engine,
            rounds,
        }) => Ok(crate::bench_pipeline::run(flows, engine, rounds as usize)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowswitch: {e}");
            ExitCode::FAILURE
        }
    }
}
