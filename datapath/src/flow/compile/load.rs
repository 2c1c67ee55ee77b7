//! Loading a table's flows: compile, verify and (for the JIT) compile to
//! native code, in parallel. Flows go in chunks to the rayon pool; the JIT
//! translates each chunk into one shared executable mapping
//! ([`jit::compile_many`]), so a flow costs its own code bytes rather than
//! a page.

use std::sync::Arc;

use rayon::prelude::*;
use thiserror::Error;

use super::{compile_flow, CompileError, CompileOptions};
use crate::ebpf::engine::{Engine, Loaded};
use crate::ebpf::jit::{self, JitError};
use crate::ebpf::verifier::{self, VerifyError};
use crate::ebpf::{ProgEnv, Program};
use crate::flow::spec::FlowSpec;

/// Flows per parallel work item (and per JIT mapping).
pub const CHUNK: usize = 512;

/// Why a flow could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlowLoadError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The compiled program (or a custom program in it) was rejected.
    #[error("flow {flow}: verifier: {source}")]
    Verify { flow: String, source: VerifyError },
    #[error("flows {first}..: jit: {source}")]
    Jit { first: String, source: JitError },
}

fn verify_one(
    spec: &FlowSpec,
    opts: &CompileOptions<'_>,
    env: &Arc<ProgEnv>,
) -> Result<Program, FlowLoadError> {
    let insns = compile_flow(spec, opts)?;
    verifier::verify(&insns, env).map_err(|source| FlowLoadError::Verify {
        flow: spec.name.clone(),
        source,
    })
}

fn load_chunk(
    specs: &[FlowSpec],
    opts: &CompileOptions<'_>,
    env: &Arc<ProgEnv>,
    engine: Engine,
) -> Result<(Vec<Loaded>, usize), FlowLoadError> {
    let progs = specs
        .iter()
        .map(|s| verify_one(s, opts, env))
        .collect::<Result<Vec<Program>, FlowLoadError>>()?;
    let insns = progs.iter().map(|p| p.insns.len()).sum();
    let loaded = match engine {
        Engine::Interp => Ok(progs.into_iter().map(Loaded::Interp).collect()),
        Engine::Jit => {
            let refs: Vec<&Program> = progs.iter().collect();
            let jits = jit::compile_many(&refs).map_err(|source| FlowLoadError::Jit {
                first: specs.first().map(|s| s.name.clone()).unwrap_or_default(),
                source,
            })?;
            Ok(jits.into_iter().map(Loaded::Jit).collect())
        }
    };
    loaded.map(|l| (l, insns))
}

/// Compiles, verifies and prepares every flow for `engine`, in parallel on
/// the current rayon pool; the result is in the order of `specs`. The
/// first error (in no particular order) is returned.
pub fn load_flows(
    specs: &[FlowSpec],
    opts: &CompileOptions<'_>,
    env: &Arc<ProgEnv>,
    engine: Engine,
) -> Result<Vec<Loaded>, FlowLoadError> {
    load_flows_counted(specs, opts, env, engine).map(|(loaded, _)| loaded)
}

/// [`load_flows`], also returning the number of instruction slots
/// verified (over all programs, custom subprograms included).
pub fn load_flows_counted(
    specs: &[FlowSpec],
    opts: &CompileOptions<'_>,
    env: &Arc<ProgEnv>,
    engine: Engine,
) -> Result<(Vec<Loaded>, usize), FlowLoadError> {
    let chunks = specs
        .par_chunks(CHUNK)
        .map(|c| load_chunk(c, opts, env, engine))
        .collect::<Result<Vec<(Vec<Loaded>, usize)>, FlowLoadError>>()?;
    let insns = chunks.iter().map(|(_, n)| n).sum();
    Ok((chunks.into_iter().flat_map(|(l, _)| l).collect(), insns))
}
