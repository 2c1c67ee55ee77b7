//! The running switch's reports: `dump-flows` (with the counters carried
//! across generations), `dump-ports`, `stats`, and the live trace, which
//! runs a frame through the current generation on copies of the MAC
//! table, meters and ports (nothing is sent, learned or counted).

use std::sync::Arc;

use datapath::dp::pipeline::{Worker, WorkerConfig};
use datapath::dp::port::Frame;
use datapath::dp::stats::WorkerCounters;

use super::show::{self, FlowRow, PortRow, StatsReport, TableRow};
use super::{State, Switchd, SwitchdError};
use crate::trace::{self, FrameTrace, Input};

impl Switchd {
    /// Every flow with its counters.
    pub fn dump_flows(&self) -> Vec<FlowRow> {
        let now = self.opts.clock.now_ms();
        let mut st = self.lock();
        let State {
            built,
            carry,
            runtime,
            ..
        } = &mut *st;
        let totals = carry.totals(&built.generation);
        let mut rows: Vec<FlowRow> = built
            .plan
            .flows
            .iter()
            .zip(&totals)
            .map(|(f, t)| FlowRow {
                table: f.table,
                name: f.name.clone(),
                priority: f.priority,
                matches: show::match_text(&f.matches),
                actions: f
                    .actions
                    .iter()
                    .map(|a| trace::action_text(&built.plan, a))
                    .collect(),
                packets: t.packets,
                bytes: t.bytes,
                idle_age_ms: (t.last_used != 0).then(|| now.saturating_sub(t.last_used)),
                runtime: runtime.iter().any(|r| r.name == f.name),
                idle_timeout: f.idle_timeout,
                hard_timeout: f.hard_timeout,
            })
            .collect();
        rows.sort_by(|a, b| {
            (a.table, std::cmp::Reverse(a.priority), &a.name).cmp(&(
                b.table,
                std::cmp::Reverse(b.priority),
                &b.name,
            ))
        });
        rows
    }

    /// Every port's counters, per queue.
    pub fn dump_ports(&self) -> Vec<PortRow> {
        let ports = self.dp.ports();
        self.dp
            .snapshot()
            .ports
            .into_iter()
            .map(|p| {
                // By id: the port set may have changed since the snapshot.
                let i = ports.index_of(p.id);
                PortRow {
                    id: p.id,
                    name: i
                        .and_then(|i| ports.get(i))
                        .map_or_else(String::new, |x| x.name().to_string()),
                    up: i.is_some_and(|i| ports.is_up(i)),
                    total: p.total.into(),
                    queues: p.queues.into_iter().map(Into::into).collect(),
                }
            })
            .collect()
    }

    /// The switch's figures.
    pub fn stats(&self) -> StatsReport {
        let snap = self.dp.snapshot();
        let st = self.lock();
        StatsReport {
            switch: self.name.clone(),
            file: st.path.display().to_string(),
            generation: st.built.generation.id(),
            flows: st.built.defs.len(),
            runtime_flows: st.runtime.len(),
            workers: self.dp.workers(),
            reloads: st.reloads,
            failed_reloads: st.failed_reloads,
            last_error: st.last_error.clone(),
            tables: snap
                .tables
                .iter()
                .map(|(id, t)| TableRow {
                    table: *id,
                    lookups: t.lookups,
                    matched: t.matched,
                    missed: t.missed,
                })
                .collect(),
            drops: snap
                .drops
                .iter()
                .map(|(r, n)| (r.name().to_string(), *n))
                .collect(),
        }
    }

    /// Traces `frame` entering on `in_port` (id or name) through the live
    /// tables, on copies of the MAC table, meters and ports: the text of
    /// `flowswitch trace` and its JSON object.
    pub fn trace(&self, in_port: &str, frame: &[u8]) -> Result<(String, FrameTrace), SwitchdError> {
        let (plan, generation) = {
            let st = self.lock();
            (st.built.plan.clone(), Arc::clone(&st.built.generation))
        };
        let port = trace::resolve_port(&plan, in_port).map_err(SwitchdError::Trace)?;
        if self.dp.ports().index_of(port).is_none() {
            return Err(SwitchdError::Trace(format!(
                "--in-port {in_port}: the switch has no port {port}"
            )));
        }
        let now_ns = self.opts.clock.now_ns();
        let ports = Arc::new(self.dp.ports().shadow());
        let counters = Arc::new(WorkerCounters::new(ports.len()));
        let mut w = Worker::new(
            // Beyond the counter blocks: the trace counts nothing.
            generation.workers(),
            Arc::clone(&generation),
            ports,
            Arc::new(self.dp.mac_table().snapshot(now_ns / 1_000_000)),
            Arc::new(self.dp.meters().snapshot()),
            counters,
            WorkerConfig {
                emc_entries: 0,
                ..WorkerConfig::default()
            },
        );
        let t = w.trace(&mut Frame::from_bytes(frame), port, now_ns);
        let report = trace::report(&generation, &t);
        let input = Input {
            in_port: in_port.to_string(),
            frame: frame.to_vec(),
        };
        let mut text = String::new();
        trace::frame_text(&mut text, &plan, 1, &input, now_ns / 1_000_000, &report);
        Ok((text, report))
    }
}
