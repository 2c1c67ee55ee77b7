//! The switch controller against an in-process switch on memory ports,
//! with a manual clock: counters across reloads, refused reloads, flows
//! added and deleted at run time, timeouts, the live trace, the watcher,
//! and a reload storm under traffic.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datapath::dp::pipeline::{Worker, WorkerConfig};
use datapath::dp::port::MemPort;
use datapath::ebpf::engine::Engine;
use datapath::packet::build;

use super::watch::{Event, WatchOptions, WatchState};
use super::*;

/// A directory of its own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("fs-switchd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Port 1 ↔ 2 forwarding; port 3's traffic is dropped.
fn switch_file(from3_priority: u16, to1_priority: u16) -> String {
    format!(
        "switch: {{name: sw}}
ports:
  - {{id: 1, name: p1}}
  - {{id: 2, name: p2}}
  - {{id: 3, name: p3}}
tables:
  - id: 0
    flows:
      - {{name: to2, priority: 10, match: {{in_port: 1}}, actions: [{{output: 2}}]}}
      - {{name: to1, priority: {to1_priority}, match: {{in_port: 2}}, actions: [{{output: 1}}]}}
      - {{name: from3, priority: {from3_priority}, match: {{in_port: 3}}, actions: [drop], idle_timeout: 1}}
"
    )
}

const MS: u64 = 1_000_000;

fn frame(n: u8) -> Vec<u8> {
    build::udp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        1000 + u16::from(n),
        9,
        b"payload",
    )
}

struct Rig {
    _dir: Dir,
    path: PathBuf,
    sw: Arc<Switchd>,
    ports: Vec<Arc<MemPort>>,
    worker: Worker,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let dir = Dir::new(tag);
        let path = dir.write("sw.yaml", &switch_file(10, 10));
        let opts = Options {
            engine: Engine::Jit,
            workers: 1,
            clock: Clock::manual(0),
            name: None,
        };
        let (sw, ports) = Switchd::in_memory(&path, opts).unwrap();
        let worker = sw
            .datapath()
            .unwrap()
            .worker(0, WorkerConfig::default())
            .unwrap();
        Rig {
            _dir: dir,
            path,
            sw,
            ports,
            worker,
        }
    }

    fn port(&self, id: u32) -> &Arc<MemPort> {
        self.ports.iter().find(|p| p.id() == id).unwrap()
    }

    /// Sends `n` frames into port `id` at the switch's clock and runs them.
    fn send(&mut self, id: u32, n: usize) {
        for i in 0..n {
            self.port(id).push_rx(&frame(i as u8));
        }
        let now = self.sw.clock().now_ns();
        while self.port(id).rx_pending() > 0 {
            self.worker.poll(64, now).unwrap();
        }
    }

    fn sent(&self, id: u32) -> usize {
        self.port(id).take_tx().len()
    }

    fn flow(&self, name: &str) -> Option<show::FlowRow> {
        self.sw.dump_flows().into_iter().find(|r| r.name == name)
    }

    fn at_ms(&self, ms: u64) {
        self.sw.clock().set_ns(ms * MS);
    }
}

use datapath::dp::port::Port as _;

#[test]
fn dump_flows_counts_traffic() {
    let mut r = Rig::new("dump");
    r.at_ms(1_000);
    r.send(1, 3);
    r.at_ms(1_500);
    r.send(2, 2);
    r.at_ms(2_000);
    assert_eq!(r.sent(2), 3);
    assert_eq!(r.sent(1), 2);
    let to2 = r.flow("to2").unwrap();
    assert_eq!(to2.packets, 3);
    assert_eq!(to2.bytes, 3 * frame(0).len() as u64);
    assert_eq!(to2.idle_age_ms, Some(1_000));
    assert_eq!(to2.matches, "in_port=1");
    assert_eq!(to2.actions, vec!["output 2".to_string()]);
    assert_eq!(r.flow("to1").unwrap().idle_age_ms, Some(500));
    assert_eq!(r.flow("from3").unwrap().idle_age_ms, None);
    let ports = r.sw.dump_ports();
    let p1 = ports.iter().find(|p| p.id == 1).unwrap();
    assert_eq!(
        (p1.name.as_str(), p1.total.rx_packets, p1.total.tx_packets),
        ("p1", 3, 2)
    );
    let s = r.sw.stats();
    assert_eq!(s.tables.first().map(|t| (t.table, t.lookups)), Some((0, 5)));
    assert_eq!(s.switch, "sw");
}

#[test]
fn reload_keeps_unchanged_flows_counters_and_resets_changed_ones() {
    let mut r = Rig::new("reload");
    r.at_ms(1_000);
    r.send(1, 3);
    r.send(2, 4);
    let g0 = r.sw.stats().generation;
    std::fs::write(&r.path, switch_file(10, 11)).unwrap();
    let rep = r.sw.reload(None).unwrap();
    assert_ne!(rep.generation, g0);
    assert_eq!((rep.flows, rep.kept, rep.fresh, rep.removed), (3, 2, 1, 1));
    assert_eq!(r.flow("to2").unwrap().packets, 3);
    assert_eq!(
        r.flow("to1").unwrap().packets,
        0,
        "to1 changed: counters reset"
    );
    assert_eq!(r.flow("to1").unwrap().priority, 11);
    r.send(1, 2);
    r.send(2, 1);
    assert_eq!(r.flow("to2").unwrap().packets, 5);
    assert_eq!(r.flow("to1").unwrap().packets, 1);
    assert_eq!(r.sent(2), 5);
    // The worker moved on: no generation is kept for it any more.
    r.sw.dump_flows();
    assert_eq!(r.sw.lock().carry.retired(), 0);
    assert_eq!(r.sw.stats().reloads, 1);
}

#[test]
fn a_bad_file_leaves_the_running_tables() {
    let mut r = Rig::new("bad");
    r.send(1, 2);
    let g0 = r.sw.stats().generation;
    std::fs::write(
        &r.path,
        switch_file(10, 10).replace("actions: [drop]", "actions: [explode]"),
    )
    .unwrap();
    let e = r.sw.reload(None).unwrap_err().to_string();
    let at = format!("{}:11:", r.path.display());
    assert!(e.contains(&at), "{e}");
    assert!(e.contains("explode"), "{e}");
    let s = r.sw.stats();
    assert_eq!((s.generation, s.reloads, s.failed_reloads), (g0, 0, 1));
    assert_eq!(s.last_error.as_deref(), Some(e.as_str()));
    r.send(1, 3);
    assert_eq!(r.sent(2), 5, "still forwarded as before");
    assert_eq!(r.flow("to2").unwrap().packets, 5);
    // A file that loads but changes the ports is refused too.
    std::fs::write(
        &r.path,
        switch_file(10, 10)
            .replace("{id: 3, name: p3}", "{id: 4, name: p4}")
            .replace("in_port: 3", "in_port: 4"),
    )
    .unwrap();
    let e = r.sw.reload(None).unwrap_err().to_string();
    assert!(e.contains("ports changed"), "{e}");
    // Another file altogether, given by path.
    let other = r._dir.write("other.yaml", &switch_file(20, 10));
    r.sw.reload(Some(&other)).unwrap();
    assert_eq!(r.sw.path(), other);
    assert_eq!(r.flow("from3").unwrap().priority, 20);
}

#[test]
fn flows_added_and_deleted_at_run_time() {
    let mut r = Rig::new("add");
    r.send(3, 1);
    assert_eq!(r.sent(1), 0);
    let rep =
        r.sw.add_flow(
            0,
            "{name: from3-ok, priority: 20, match: {in_port: p3}, actions: [{output: 1}]}",
        )
        .unwrap();
    assert_eq!(rep.names, vec!["from3-ok".to_string()]);
    assert_eq!((rep.kept, rep.fresh), (3, 1));
    r.send(3, 2);
    assert_eq!(r.sent(1), 2);
    let added = r.flow("from3-ok").unwrap();
    assert!(added.runtime);
    assert_eq!(added.packets, 2);
    assert_eq!(r.flow("from3").unwrap().packets, 1);
    // Taken names, overlaps, bad references are refused.
    let dup =
        r.sw.add_flow(0, "{name: to2, priority: 1}")
            .unwrap_err()
            .to_string();
    assert!(dup.contains("taken"), "{dup}");
    let ov =
        r.sw.add_flow(
            0,
            "{name: x, priority: 10, match: {in_port: 1}, actions: [drop]}",
        )
        .unwrap_err()
        .to_string();
    assert!(ov.contains("overlapping") && ov.contains("to2"), "{ov}");
    let bad =
        r.sw.add_flow(0, "{name: y, priority: 1, actions: [{output: 7}]}")
            .unwrap_err()
            .to_string();
    assert!(bad.starts_with("add-flow:1:"), "{bad}");
    // Added flows survive a reload of the file, with their counters.
    r.sw.reload(None).unwrap();
    assert_eq!(r.flow("from3-ok").unwrap().packets, 2);
    // Deleting.
    let rep = r.sw.del_flows(Some("from3-ok"), None).unwrap();
    assert_eq!(rep.names, vec!["from3-ok".to_string()]);
    r.send(3, 1);
    assert_eq!(r.sent(1), 0);
    assert!(matches!(
        r.sw.del_flows(Some("nope"), None),
        Err(SwitchdError::NoSuchFlow(_))
    ));
    assert!(matches!(
        r.sw.del_flows(None, Some(9)),
        Err(SwitchdError::EmptyTable(9))
    ));
    let rep = r.sw.del_flows(None, Some(0)).unwrap();
    assert_eq!(rep.names, vec!["from3", "to1", "to2"]);
    r.send(1, 1);
    assert_eq!(r.sent(2), 0, "table 0 is empty: miss drop");
    // A reload brings the file's flows back, counting from zero.
    r.sw.reload(None).unwrap();
    r.send(1, 1);
    assert_eq!(r.sent(2), 1);
    assert_eq!(r.flow("to2").unwrap().packets, 1);
}

#[test]
fn hard_and_idle_timeouts_expire_flows_added_at_run_time() {
    let mut r = Rig::new("timeouts");
    r.at_ms(1_000);
    r.sw.add_flow(
        0,
        "{name: hard, priority: 5, match: {in_port: 3}, actions: [flood], hard_timeout: 5}",
    )
    .unwrap();
    r.sw
        .add_flow(0, "{name: idle, priority: 30, match: {in_port: 3, udp_src: 1000}, actions: [{output: 2}], idle_timeout: 2}")
        .unwrap();
    r.at_ms(2_500);
    r.send(3, 1); // hits `idle` (udp_src 1000) at 2.5 s
    assert_eq!(r.sent(2), 1);
    r.at_ms(4_499);
    assert_eq!(r.sw.expire().unwrap(), None);
    r.at_ms(4_500);
    let rep = r.sw.expire().unwrap().unwrap();
    assert_eq!(rep.names, vec!["idle".to_string()]);
    r.at_ms(5_999);
    assert_eq!(r.sw.expire().unwrap(), None);
    r.at_ms(6_000);
    assert_eq!(
        r.sw.expire().unwrap().unwrap().names,
        vec!["hard".to_string()]
    );
    // The file's flow with an idle timeout stays: timeouts are for flows
    // added at run time.
    r.at_ms(60_000);
    assert_eq!(r.sw.expire().unwrap(), None);
    assert!(r.flow("from3").is_some());
    assert_eq!(r.sw.stats().runtime_flows, 0);
}

#[test]
fn live_trace_reads_like_the_offline_one_and_changes_nothing() {
    let r = Rig::new("trace");
    let f = frame(0);
    let (text, t) = r.sw.trace("p1", &f).unwrap();
    let offline = crate::trace::trace_file(
        &r.path,
        &[crate::trace::Input {
            in_port: "p1".into(),
            frame: f.clone(),
        }],
        crate::dataplane::EngineOpt::Jit,
    )
    .unwrap();
    let inputs = [crate::trace::Input {
        in_port: "p1".into(),
        frame: f,
    }];
    assert_eq!(text, crate::trace::to_text(&offline.0, &inputs, &offline.1));
    assert_eq!(vec![t], offline.1);
    assert!(text.contains("flow to2"), "{text}");
    assert_eq!(r.sent(2), 0, "a trace sends nothing");
    assert_eq!(r.flow("to2").unwrap().packets, 0, "nor counts");
    assert!(matches!(
        r.sw.trace("p9", &[0]),
        Err(SwitchdError::Trace(_))
    ));
}

#[test]
fn the_watcher_reloads_on_change_and_on_hup() {
    let r = Rig::new("watch");
    let opts = WatchOptions {
        sighup: false,
        ..WatchOptions::default()
    };
    let mut w = WatchState::new(&r.sw);
    assert!(w.round(&r.sw, &opts, false).is_empty());
    std::fs::write(&r.path, switch_file(12, 10)).unwrap();
    let ev = w.round(&r.sw, &opts, false);
    assert!(matches!(ev.as_slice(), [Event::Reloaded(_)]), "{ev:?}");
    assert_eq!(r.flow("from3").unwrap().priority, 12);
    assert!(
        w.round(&r.sw, &opts, false).is_empty(),
        "no change, no reload"
    );
    std::fs::write(&r.path, "switch: {name: sw}\ntables: [\n").unwrap();
    let ev = w.round(&r.sw, &opts, false);
    assert!(matches!(ev.as_slice(), [Event::ReloadFailed(_)]), "{ev:?}");
    assert!(w.round(&r.sw, &opts, false).is_empty(), "logged once");
    std::fs::write(&r.path, switch_file(13, 10)).unwrap();
    let ev = w.round(&r.sw, &opts, true);
    assert!(matches!(ev.as_slice(), [Event::Reloaded(_)]), "{ev:?}");
    assert_eq!(r.sw.stats().reloads, 2);
    r.sw.add_flow(
        0,
        "{name: t, priority: 1, match: {in_port: 3}, actions: [drop], hard_timeout: 1}",
    )
    .unwrap();
    r.at_ms(1_000);
    let ev = w.round(&r.sw, &opts, false);
    assert_eq!(ev, vec![Event::Expired(vec!["t".into()])]);
}

/// A worker forwards frames continuously while another thread reloads
/// 200 times (alternating two versions of the file that differ in another
/// flow): every frame arrives and the flow's counter counts every one.
#[test]
fn reload_storm_loses_no_frame_and_no_count() {
    let r = Rig::new("storm");
    let Rig {
        _dir,
        path,
        sw,
        ports,
        mut worker,
    } = r;
    let stop = Arc::new(AtomicBool::new(false));
    let p1 = Arc::clone(ports.iter().find(|p| p.id() == 1).unwrap());
    let p2 = Arc::clone(ports.iter().find(|p| p.id() == 2).unwrap());
    let flag = Arc::clone(&stop);
    let traffic = std::thread::spawn(move || {
        let (mut pushed, mut received) = (0u64, 0u64);
        let mut round = 0u64;
        while !flag.load(Ordering::Relaxed) || round < 10 {
            for i in 0..32u8 {
                p1.push_rx(&frame(i));
            }
            pushed += 32;
            while p1.rx_pending() > 0 {
                worker.poll(64, (round + 1) * MS).unwrap();
            }
            received += p2.take_tx().len() as u64;
            round += 1;
        }
        (pushed, received, round)
    });
    let mut gens = std::collections::HashSet::new();
    let t0 = std::time::Instant::now();
    for i in 0..200u16 {
        std::fs::write(&path, switch_file(11 - i % 2, 10)).unwrap();
        let rep = sw.reload(None).unwrap();
        assert_eq!(rep.kept, 2, "to2 and to1 are unchanged");
        gens.insert(rep.generation);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let reloading = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (pushed, received, rounds) = traffic.join().unwrap();
    println!(
        "reload storm: 200 reloads in {reloading:?} (2 ms pause each), {pushed} frames in {rounds} batches, {received} delivered"
    );
    assert_eq!(gens.len(), 200);
    assert!(rounds >= 10);
    assert_eq!(received, pushed, "every frame the flows allow arrived");
    let to2 = sw
        .dump_flows()
        .into_iter()
        .find(|f| f.name == "to2")
        .unwrap();
    assert_eq!(to2.packets, pushed, "no count lost across 200 generations");
    assert_eq!(sw.lock().carry.retired(), 0);
}
