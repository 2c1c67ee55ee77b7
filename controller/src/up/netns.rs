//! Network namespaces and links, driven through iproute2's `ip` command.
//!
//! [`Netns`] owns one namespace: it is created by [`Netns::create`] (which
//! refuses a name that already exists: a namespace this process did not
//! make is never reused or deleted) and deleted when dropped, taking the
//! interfaces inside it along. Commands run inside with [`Netns::cmd`].
//!
//! Everything goes through `ip` rather than system calls, so this module
//! needs no `unsafe` and shows in `ps` what it does.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use thiserror::Error;

/// Longest interface name Linux takes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A namespace or link operation that failed.
#[derive(Debug, Error)]
pub enum NetnsError {
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("network namespace {0:?} already exists and does not belong to this topology")]
    NamespaceExists(String),
    #[error("interface {0:?} already exists and does not belong to this topology")]
    LinkExists(String),
    #[error("{what} name {name:?} is not usable (1 to {max} of a-z A-Z 0-9 . _ -)")]
    BadName {
        what: &'static str,
        name: String,
        max: usize,
    },
}

/// Whether `name` is a usable namespace or interface name of at most
/// `max` bytes.
pub fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; an exit status other than 0 is an error
/// carrying its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, NetnsError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Spawn {
            cmd: describe(cmd),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(NetnsError::Failed {
            cmd: describe(cmd),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `ip ARGS...` in the current namespace.
pub fn ip(args: &[&str]) -> Result<Output, NetnsError> {
    run(Command::new("ip").args(args))
}

/// Whether a namespace called `name` exists.
pub fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Whether an interface called `name` exists in the current namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// A network namespace this process created; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name`, with its loopback up. Fails if it exists.
    pub fn create(name: &str) -> Result<Netns, NetnsError> {
        if !valid_name(name, 64) {
            return Err(NetnsError::BadName {
                what: "namespace",
                name: name.to_string(),
                max: 64,
            });
        }
        if namespace_exists(name) {
            return Err(NetnsError::NamespaceExists(name.to_string()));
        }
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Takes ownership of an existing namespace (one a crashed run of the
    /// same topology left behind), so that dropping it deletes it.
    pub fn adopt(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// `ip ARGS...` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output, NetnsError> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Moves interface `dev` of the current namespace into this one, and
    /// gives it `mac`, `addr` (CIDR) and an up state. With `vlan`, the
    /// address goes on a tagged sub-interface `dev.VID` instead, so the
    /// host's IP traffic leaves tagged.
    pub fn attach(
        &self,
        dev: &str,
        mac: &str,
        addr: &str,
        vlan: Option<u16>,
    ) -> Result<(), NetnsError> {
        ip(&["link", "set", "dev", dev, "netns", &self.name])?;
        self.ip(&["link", "set", "dev", dev, "address", mac])?;
        self.ip(&["link", "set", "dev", dev, "up"])?;
        match vlan {
            None => {
                self.ip(&["addr", "add", addr, "dev", dev])?;
            }
            Some(vid) => {
                let sub = format!("{dev}.{vid}");
                let sub = if sub.len() > IFNAME_MAX {
                    format!("v{vid}")
                } else {
                    sub
                };
                let id = vid.to_string();
                self.ip(&[
                    "link", "add", "link", dev, "name", &sub, "type", "vlan", "id", &id,
                ])?;
                self.ip(&["link", "set", "dev", &sub, "address", mac])?;
                self.ip(&["link", "set", "dev", &sub, "up"])?;
                self.ip(&["addr", "add", addr, "dev", &sub])?;
            }
        }
        Ok(())
    }

    /// Whether this kernel can make 802.1Q sub-interfaces (some VM
    /// kernels lack the `8021q` module): tried on a scratch veth pair
    /// inside the namespace, then removed.
    pub fn kernel_has_vlan(&self) -> bool {
        if self
            .ip(&[
                "link", "add", "fsvp0", "type", "veth", "peer", "name", "fsvp1",
            ])
            .is_err()
        {
            return false;
        }
        let ok = self
            .ip(&[
                "link", "add", "link", "fsvp0", "name", "fsvp0.1", "type", "vlan", "id", "1",
            ])
            .is_ok();
        let _ = self.ip(&["link", "delete", "fsvp0"]);
        ok
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Best effort: the namespace may already be gone.
        let _ = ip(&["netns", "delete", &self.name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("h1", IFNAME_MAX));
        assert!(valid_name("fs-h1.10", IFNAME_MAX));
        assert!(!valid_name("", IFNAME_MAX));
        assert!(!valid_name("..", IFNAME_MAX));
        assert!(!valid_name("a/b", 64));
        assert!(!valid_name("sixteen-chars-xx", IFNAME_MAX));
        assert!(!valid_name("h 1", IFNAME_MAX));
    }
}
