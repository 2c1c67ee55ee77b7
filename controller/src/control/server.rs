//! The control socket's server: a Unix stream socket at
//! `RUN_DIR/NAME.sock` (`/run/flowswitch` unless `FLOWSWITCH_RUN_DIR` or
//! `--run-dir` says otherwise; the directory is created 0755, the socket
//! made 0600), one thread accepting (it looks at its stop flag every 50 ms),
//! one thread per connection.
//!
//! Every connection's peer is checked with `SO_PEERCRED`: a user that is
//! neither root nor the switch's own is answered one error line and
//! disconnected, whatever the socket's mode. A request that does not parse
//! gets an error response and the connection goes on; a line longer than
//! [`MAX_LINE`] gets an error and the connection is closed (the rest of it
//! could not be framed).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use datapath::sys::cred;
use serde_json::{json, Value};
use thiserror::Error;

use super::protocol::{parse_request, Request, Response, MAX_LINE};
use crate::switchd::Switchd;

/// The environment variable that moves the socket directory.
pub const RUN_DIR_ENV: &str = "FLOWSWITCH_RUN_DIR";
/// Where sockets are by default.
pub const DEFAULT_RUN_DIR: &str = "/run/flowswitch";

/// Why the socket cannot be served.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: a switch is already serving this socket", path.display())]
    InUse { path: PathBuf },
}

/// The socket directory: `flag`, else `$FLOWSWITCH_RUN_DIR`, else
/// [`DEFAULT_RUN_DIR`].
pub fn run_dir(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os(RUN_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_RUN_DIR), PathBuf::from),
    }
}

/// The socket of switch `name` in `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// A served socket; dropping it stops accepting and removes the socket.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `sw`'s socket in `dir`.
pub fn listen(sw: Arc<Switchd>, dir: &Path) -> Result<Server, ControlError> {
    let io_err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ControlError::Io { what, path, source }
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err("cannot set the mode of", dir))?;
    }
    let path = socket_path(dir, sw.name());
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(ControlError::InUse { path });
        }
        // A stale socket of a switch that is gone.
        std::fs::remove_file(&path).map_err(io_err("cannot remove the stale socket", &path))?;
    }
    let listener = UnixListener::bind(&path).map_err(io_err("cannot listen on", &path))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("cannot make non-blocking", &path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("cannot set the mode of", &path))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(format!("fs-ctl-{}", sw.name()))
        .spawn(move || accept_loop(&listener, &sw, &flag))
        .map_err(io_err("cannot start the thread for", &path))?;
    Ok(Server {
        path,
        stop,
        thread: Some(thread),
    })
}

/// How often the accept loop looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// Accepts until `stop`; the listener is non-blocking so that stopping
/// never depends on a last connection getting through.
fn accept_loop(listener: &UnixListener, sw: &Arc<Switchd>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(e) => {
                eprintln!("flowswitch {}: control socket: {e}", sw.name());
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let sw = Arc::clone(sw);
        let spawned = std::thread::Builder::new()
            .name("fs-ctl-conn".into())
            .spawn(move || {
                let _ = serve_connection(&sw, stream);
            });
        if let Err(e) = spawned {
            eprintln!("flowswitch: control connection: {e}");
        }
    }
}

/// Whether user `uid` may use the socket of a switch run by `owner`.
pub fn allowed(uid: u32, owner: u32) -> bool {
    uid == 0 || uid == owner
}

fn send(w: &mut impl Write, r: &Response) -> io::Result<()> {
    let mut line = r.to_line();
    line.push('\n');
    w.write_all(line.as_bytes())?;
    w.flush()
}

fn serve_connection(sw: &Switchd, stream: UnixStream) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let uid = cred::peer_uid(&stream)?;
    let owner = cred::effective_uid();
    if !allowed(uid, owner) {
        return send(
            &mut out,
            &Response::error(format!(
                "permission denied: user {uid} is neither root nor the switch's user ({owner})"
            )),
        );
    }
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
            return send(
                &mut out,
                &Response::error(format!("bad request: longer than {MAX_LINE} bytes")),
            );
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(l) => l.trim(),
            Err(e) => {
                send(&mut out, &Response::error(format!("bad request: {e}")))?;
                continue;
            }
        };
        if line.is_empty() {
            continue;
        }
        let resp = match parse_request(line) {
            Ok(req) => handle(sw, req),
            Err(r) => r,
        };
        send(&mut out, &resp)?;
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_value(v) {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(format!("response: {e}")),
    }
}

/// Runs one request.
pub fn handle(sw: &Switchd, req: Request) -> Response {
    let change =
        |r: Result<crate::switchd::show::ChangeReport, crate::switchd::SwitchdError>| match r {
            Ok(r) => to_value(&r),
            Err(e) => Response::error(e.to_string()),
        };
    match req {
        Request::DumpFlows {} => to_value(&sw.dump_flows()),
        Request::DumpPorts {} => to_value(&sw.dump_ports()),
        Request::Stats {} => to_value(&sw.stats()),
        Request::AddFlow { table, flow } => change(sw.add_flow(table, &flow)),
        Request::DelFlows { name, table } => {
            if name.is_none() && table.is_none() {
                return Response::error("del-flows needs a name or a table");
            }
            change(sw.del_flows(name.as_deref(), table))
        }
        Request::Reload { file } => change(sw.reload(file.as_deref().map(Path::new))),
        Request::Trace { in_port, frame } => {
            let bytes = match crate::trace::parse_hex(&frame) {
                Ok(b) => b,
                Err(e) => return Response::error(format!("--frame {e}")),
            };
            match sw.trace(&in_port, &bytes) {
                Ok((text, t)) => {
                    let trace: Value = serde_json::to_value(&t).unwrap_or(Value::Null);
                    Response::ok(json!({"text": text, "trace": trace}))
                }
                Err(e) => Response::error(e.to_string()),
            }
        }
    }
}
