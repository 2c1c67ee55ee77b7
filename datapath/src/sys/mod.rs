//! The only place in flowswitch with `unsafe` code: executable memory for the
//! JIT, calls into JIT code, cache prefetch hints, socket peer credentials,
//! the SIGHUP flag, TAP ioctls ([`tap`]), epoll ([`epoll`]) and namespace
//! calls ([`netns`]). Every `unsafe` block carries a `// SAFETY:` comment.

pub mod cred;
pub mod epoll;
#[cfg(target_arch = "x86_64")]
pub mod exec;
#[cfg(target_arch = "x86_64")]
pub mod jitcall;
pub mod netns;
pub mod prefetch;
pub mod signal;
pub mod tap;
