//! The control socket: [`protocol`] (JSON lines), [`server`] (the socket a
//! running switch serves) and [`client`] (what `flowswitch ctl` speaks).

pub mod client;
pub mod protocol;
pub mod server;

pub use protocol::{Request, Response};
pub use server::{listen, run_dir, socket_path, ControlError, Server};
