//! The typed model of a topology file (`topologies/*.yaml`), as written.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;

use super::switch::Queues;
use super::value::{bounded_u64, IfName, IfaceAddr, Mac, PortId, Vid};

/// Host names become namespace names and part of interface names: short.
pub type HostName = IfName<12>;

/// A whole topology file.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    pub name: IfName<64>,
    /// A switch file, relative to the topology file; its ports are ignored.
    pub flows: PathBuf,
    pub hosts: Vec<HostSpec>,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

fn yes() -> bool {
    true
}

fn one_queue() -> Queues {
    Queues(1)
}

/// One host: a network namespace with one TAP link to the switch.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: HostName,
    /// The switch port id of the host's link.
    pub port: PortId,
    pub ip: IfaceAddr,
    /// Optional: a stable address is derived from the name.
    pub mac: Option<Mac>,
    /// The host sends frames tagged with this VLAN id (1..=4094).
    pub vlan: Option<Vid>,
    #[serde(default = "one_queue")]
    pub queues: Queues,
    #[serde(default = "yes")]
    pub offload: bool,
}

impl HostSpec {
    /// The host's MAC: the one given, or a locally administered unicast
    /// address derived from the name (FNV-1a), stable across runs.
    pub fn mac_or_derived(&self) -> Mac {
        self.mac.unwrap_or_else(|| derived_mac(self.name.as_str()))
    }
}

/// `02:xx:xx:xx:xx:xx` from a hash of `name`.
pub fn derived_mac(name: &str) -> Mac {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Mac(0x0200_0000_0000 | (h & 0x00ff_ffff_ffff))
}

/// `{iperf: {from, to, seconds}}`.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct IperfSpec {
    pub from: String,
    pub to: String,
    #[serde(default = "five")]
    pub seconds: Seconds,
}

fn five() -> Seconds {
    Seconds(5)
}

/// A duration for a check, 1..=3600 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u32);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bounded_u64(d, "seconds", 1, 3600).map(|n| Seconds(n as u32))
    }
}

/// `{from, to}` of a ping check.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct PingPair {
    pub from: String,
    pub to: String,
}

/// One check of `checks:`, run in order by `flowswitch up --check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckSpec {
    /// Every host pings every other host.
    Pingall,
    Iperf(IperfSpec),
    /// `from` must not reach `to` with ping.
    ExpectNoPing(PingPair),
}

#[derive(Debug, Clone, Copy)]
enum CheckKey {
    Iperf,
    ExpectNoPing,
}

const CHECKS: &str = "pingall, {iperf: {from, to, seconds}}, {expect_no_ping: {from, to}}";

impl<'de> Deserialize<'de> for CheckKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a check name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CheckKey, E> {
                match v {
                    "iperf" => Ok(CheckKey::Iperf),
                    "expect_no_ping" => Ok(CheckKey::ExpectNoPing),
                    "pingall" => Err(E::custom("`pingall` takes no argument: write it plainly")),
                    _ => Err(E::custom(format!(
                        "unknown check `{v}`; expected one of {CHECKS}"
                    ))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for CheckSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a check: `pingall` or a one-key mapping")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CheckSpec, E> {
                match v {
                    "pingall" => Ok(CheckSpec::Pingall),
                    "iperf" | "expect_no_ping" => Err(E::custom(format!(
                        "check `{v}` needs {{from, to}}, like {{{v}: {{from: h1, to: h2}}}}"
                    ))),
                    _ => Err(E::custom(format!(
                        "unknown check `{v}`; expected one of {CHECKS}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<CheckSpec, A::Error> {
                let Some(k) = m.next_key::<CheckKey>()? else {
                    return Err(de::Error::custom("an empty mapping is not a check"));
                };
                let c = match k {
                    CheckKey::Iperf => CheckSpec::Iperf(m.next_value()?),
                    CheckKey::ExpectNoPing => CheckSpec::ExpectNoPing(m.next_value()?),
                };
                if let Some(extra) = m.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a check is a mapping with one key; `{extra}` is a second one"
                    )));
                }
                Ok(c)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_macs_are_local_unicast_and_stable() {
        let a = derived_mac("h1");
        assert_eq!(a, derived_mac("h1"));
        assert_ne!(a, derived_mac("h2"));
        assert_eq!(a.0 >> 40, 0x02);
    }
}
