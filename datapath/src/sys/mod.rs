//! The only place in flowswitch with `unsafe` code: executable memory for the
//! JIT, calls into JIT code, TAP ioctls ([`tap`]), epoll ([`epoll`]) and
//! namespace calls ([`netns`]). Every `unsafe` block carries a `// SAFETY:`
//! comment.

pub mod epoll;
pub mod netns;
pub mod tap;

#[cfg(target_arch = "x86_64")]
pub mod exec;
#[cfg(target_arch = "x86_64")]
pub mod jitcall;
