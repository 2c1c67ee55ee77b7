//! A flow added at run time (`flowswitch ctl NAME add-flow`): one flow
//! entry written as in a switch file (`{name: web, priority: 10, match:
//! {...}, actions: [...], idle_timeout: 30}`), checked and lowered against
//! the running switch: its ports, meters and tables, its custom programs
//! (an `ebpf:` path is relative to the switch file, as in the file).
//!
//! Errors are located in the flow's own text, named `add-flow`
//! (`add-flow:1:30: ...`). Whether the name is free and the flow does not
//! overlap another of its priority is the running switch's check: it knows
//! the other flows added at run time.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use datapath::flow::spec::FlowSpec;

use super::error::{LoadErrors, ModelError};
use super::load::{dir_of, parse};
use super::lower::{lower_flow, Cx, EbpfProgram, FlowEnv, PortTable, Programs, SwitchPlan};
use super::pos::PosIndex;
use super::switch::FlowEntry;

/// The name an added flow's text has in error messages.
pub const ADDED_SOURCE: &str = "add-flow";

/// A flow added at run time, lowered.
#[derive(Debug, Clone)]
pub struct AddedFlow {
    pub spec: FlowSpec,
    /// The switch's filter programs with any the flow adds appended
    /// (`spec.filter` indexes this).
    pub filters: Vec<EbpfProgram>,
    /// The switch's action programs, likewise.
    pub action_programs: Vec<EbpfProgram>,
}

/// Parses and lowers the flow `text` for table `table` of `plan`.
pub fn lower_added(plan: &SwitchPlan, table: u8, text: &str) -> Result<AddedFlow, LoadErrors> {
    let file: Arc<Path> = Arc::from(Path::new(ADDED_SOURCE));
    let pos = PosIndex::build(&file, text).map_err(LoadErrors)?;
    let entry: FlowEntry = parse(&pos, text)?;
    let mut cx = Cx {
        pos: &pos,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    if entry.name.is_empty()
        || entry
            .name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        cx.errors.push(ModelError::Invalid {
            at: pos.value("name"),
            msg: format!(
                "flow name `{}` must be non-empty, without spaces or control characters",
                entry.name
            ),
        });
    }
    let ports = if plan.ports_known {
        PortTable::known(plan.ports.clone(), "the running switch")
    } else {
        PortTable::unknown()
    };
    let mut table_ids: BTreeMap<u8, usize> = plan
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id, i))
        .collect();
    for f in &plan.flows {
        table_ids.entry(f.table).or_insert(0);
    }
    table_ids.entry(table).or_insert(0);
    table_ids.entry(0).or_insert(0);
    let dir = dir_of(&plan.source);
    let env = FlowEnv {
        ports: &ports,
        meters: &plan.meters,
        table_ids: &table_ids,
        dir: &dir,
    };
    let mut filters = Programs(plan.filters.clone());
    let mut actions = Programs(plan.action_programs.clone());
    let mut gotos = HashSet::new();
    let spec = lower_flow(
        &entry,
        table,
        "",
        &env,
        &mut filters,
        &mut actions,
        &mut gotos,
        &mut cx,
    );
    match spec {
        Some(spec) if cx.errors.is_empty() => Ok(AddedFlow {
            spec,
            filters: filters.0,
            action_programs: actions.0,
        }),
        _ => Err(LoadErrors(cx.errors).sorted()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::switch_from_str;
    use datapath::flow::spec::Action;

    fn plan() -> SwitchPlan {
        switch_from_str(
            Path::new("/tmp/sw.yaml"),
            "switch: {name: br0}\nports:\n  - {id: 1, name: p1}\n  - {id: 2, name: p2}\nmeters:\n  slow: {rate_kbps: 100, burst_kb: 10}\ntables:\n  - id: 0\n    flows:\n      - {name: all, priority: 0, actions: [{goto_table: 1}]}\n  - id: 1\n    flows:\n      - {name: l2, priority: 0, actions: [normal]}\n",
        )
        .unwrap()
    }

    #[test]
    fn a_flow_resolves_against_the_switch() {
        let p = plan();
        let a = lower_added(
            &p,
            0,
            "{name: web, priority: 10, match: {in_port: p1, tcp_dst: 80}, actions: [{meter: slow}, {output: p2}], hard_timeout: 5}",
        )
        .unwrap();
        assert_eq!(a.spec.name, "web");
        assert_eq!(a.spec.table, 0);
        assert_eq!(a.spec.priority, 10);
        assert_eq!(a.spec.hard_timeout, 5);
        assert_eq!(
            a.spec.actions,
            vec![Action::Meter(0), Action::Output(vec![2])]
        );
        let g = lower_added(&p, 0, "{name: g, priority: 5, actions: [{goto_table: 1}]}").unwrap();
        assert_eq!(g.spec.actions, vec![Action::GotoTable(1)]);
    }

    #[test]
    fn errors_are_located_in_the_flow_text() {
        let p = plan();
        let e = lower_added(&p, 0, "{name: x, priority: 1, actions: [{output: 9}]}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("add-flow:1:"), "{e}");
        assert!(e.contains('9'), "{e}");
        let e = lower_added(&p, 0, "name: x\npriority: 1\nactions: [{meter: fast}]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("add-flow:3:"), "{e}");
        assert!(e.contains("fast"), "{e}");
        let e = lower_added(&p, 0, "{name: x, priority: 1, colour: red}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = lower_added(&p, 1, "{name: x, priority: 1, actions: [{goto_table: 1}]}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("add-flow:1:"), "{e}");
        let e = lower_added(&p, 0, "{name: 'a b', priority: 1}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a b"), "{e}");
        assert!(lower_added(&p, 0, "{{{").is_err());
    }
}
