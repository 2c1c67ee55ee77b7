//! The only place in flowswitch with `unsafe` code: executable memory for the
//! JIT, calls into JIT code, cache prefetch hints, socket peer credentials
//! and the SIGHUP flag, and (later) TAP ioctls and namespace calls.
//! Every `unsafe` block carries a `// SAFETY:` comment.

pub mod cred;
#[cfg(target_arch = "x86_64")]
pub mod exec;
#[cfg(target_arch = "x86_64")]
pub mod jitcall;
pub mod prefetch;
pub mod signal;
