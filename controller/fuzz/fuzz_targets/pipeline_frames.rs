//! Arbitrary frames through the example switch files on both engines: the
//! JIT-compiled pipeline and the interpreted one must choose the same flows,
//! send the same bytes to the same ports and give the same drop reasons,
//! frame after frame (MAC tables and meters carry over, as in a running
//! switch), and nothing may panic.
//!
//! Input: one byte picks the switch file; then frames, each as a port byte
//! (an index into the file's ports), a length byte, and that many bytes.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use controller::dataplane;
use controller::model::{self, SwitchPlan};
use controller::trace::report;
use datapath::dp::pipeline::{Datapath, Generation, Worker, WorkerConfig};
use datapath::dp::port::{Frame, MemPort, PortId};
use datapath::ebpf::engine::Engine;
use libfuzzer_sys::fuzz_target;

/// The switch files (relative to the repository).
const FILES: [&str; 6] = [
    "flows/example.yaml",
    "flows/vlan-trunk.yaml",
    "flows/star.yaml",
    "flows/acl.yaml",
    "flows/l2-learning.yaml",
    "flows/demo.yaml",
];

/// One engine's datapath of one file.
struct Side {
    generation: Arc<Generation>,
    _dp: Datapath,
    /// The ports, which keep what they are sent (emptied after each frame).
    mems: Vec<Arc<MemPort>>,
    worker: Worker,
}

/// One file on both engines, and the simulated clock.
struct Rig {
    ports: Vec<PortId>,
    jit: Side,
    interp: Side,
    now_ns: u64,
}

fn side(plan: &SwitchPlan, ports: &[PortId], engine: Engine) -> Side {
    let generation =
        Arc::new(dataplane::build_generation(plan, engine, 1).expect("the example compiles"));
    let (dp, mems) = dataplane::mem_datapath(plan, None, ports, Arc::clone(&generation))
        .expect("a memory datapath");
    let worker = dp.worker(0, WorkerConfig::default()).expect("worker 0");
    Side {
        generation,
        _dp: dp,
        mems,
        worker,
    }
}

fn rigs() -> &'static Mutex<Vec<Rig>> {
    static RIGS: OnceLock<Mutex<Vec<Rig>>> = OnceLock::new();
    RIGS.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let rigs = FILES
            .iter()
            .map(|f| {
                let plan = model::load_switch(&repo.join(f)).expect("the example loads");
                let ports = dataplane::port_ids(&plan, &[1, 2, 3, 4]);
                Rig {
                    jit: side(&plan, &ports, Engine::Jit),
                    interp: side(&plan, &ports, Engine::Interp),
                    ports,
                    now_ns: 0,
                }
            })
            .collect();
        Mutex::new(rigs)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else { return };
    let Ok(mut rigs) = rigs().lock() else { return };
    let n = rigs.len();
    let Some(rig) = rigs.get_mut(usize::from(pick) % n) else { return };
    while let [p, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let port = rig.ports[usize::from(*p) % rig.ports.len()];
        rig.now_ns += 1_000_000;
        let mut f = Frame::from_bytes(bytes);
        let tj = rig.jit.worker.trace(&mut f, port, rig.now_ns);
        let mut f = Frame::from_bytes(bytes);
        let ti = rig.interp.worker.trace(&mut f, port, rig.now_ns);
        assert_eq!(
            report(&rig.jit.generation, &tj),
            report(&rig.interp.generation, &ti),
            "port {port}, frame {bytes:02x?}"
        );
        for m in rig.jit.mems.iter().chain(&rig.interp.mems) {
            m.take_tx();
        }
    }
});
