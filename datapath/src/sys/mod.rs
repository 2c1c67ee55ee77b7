//! The only place in flowswitch with `unsafe` code: executable memory for the
//! JIT, calls into JIT code, cache prefetch hints, and (later) TAP ioctls and
//! namespace calls.
//! Every `unsafe` block carries a `// SAFETY:` comment.

#[cfg(target_arch = "x86_64")]
pub mod exec;
#[cfg(target_arch = "x86_64")]
pub mod jitcall;
pub mod prefetch;
