//! The typed model of a switch file (`flows/*.yaml`), as written: names are
//! not yet resolved and cross references not yet checked (`validate.rs`).
//! Every struct refuses unknown keys.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;

use super::value::{
    bounded_u64, ArpOp, Dscp, Ecn, EthType, IcmpNum, IfName, IpProto, Ipv4, Ipv4Net, Ipv6, Ipv6Net,
    L4Port, Mac, MacMatch, Name, Pcp, PortId, PortRange, PortRef, Priority, TcpFlags, Vid,
    VlanMatch,
};

/// A whole switch file.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchFile {
    pub switch: SwitchSection,
    /// Optional when a topology file provides the ports.
    pub ports: Option<Vec<PortSpec>>,
    #[serde(default)]
    pub meters: Meters,
    #[serde(default)]
    pub tables: Vec<TableSpec>,
}

/// `switch:`.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSection {
    /// Names the control socket (`/run/flowswitch/NAME.sock`).
    pub name: IfName<64>,
    /// Datapath worker threads; `None` = the number of cores.
    pub threads: Option<Threads>,
    #[serde(default)]
    pub miss: Miss,
    /// How long a worker polls after traffic before it sleeps, in µs;
    /// `None` = the datapath's default.
    pub busy_poll_us: Option<BusyPollUs>,
}

/// `busy_poll_us`, 0..=10,000 (0: workers always sleep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPollUs(pub u32);

impl<'de> Deserialize<'de> for BusyPollUs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bounded_u64(d, "busy_poll_us", 0, 10_000).map(|n| BusyPollUs(n as u32))
    }
}

/// A worker thread count, 1..=1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads(pub u16);

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bounded_u64(d, "threads", 1, 1024).map(|n| Threads(n as u16))
    }
}

/// What a packet that matches no flow in a table gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub enum Miss {
    #[default]
    Drop,
    Normal,
    Flood,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Miss::Drop => "drop",
            Miss::Normal => "normal",
            Miss::Flood => "flood",
        })
    }
}

fn yes() -> bool {
    true
}

fn one_queue() -> Queues {
    Queues(1)
}

/// A TAP queue count, 1..=256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queues(pub u16);

impl<'de> Deserialize<'de> for Queues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bounded_u64(d, "queues", 1, 256).map(|n| Queues(n as u16))
    }
}

/// One entry of `ports:`: a TAP device.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub id: PortId,
    /// The TAP device name (at most 15 characters, the kernel's limit).
    pub name: IfName<15>,
    /// virtio-net header and offloads (default on).
    #[serde(default = "yes")]
    pub offload: bool,
    #[serde(default = "one_queue")]
    pub queues: Queues,
}

/// `meters:`, a mapping from name to token bucket, in file order.
#[derive(Debug, Clone, Default)]
pub struct Meters(pub Vec<(String, MeterSpec)>);

impl<'de> Deserialize<'de> for Meters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meters;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping from meter name to {rate_kbps, burst_kb}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Meters, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = m.next_key::<Name>()? {
                    let spec: MeterSpec = m.next_value()?;
                    out.push((name.0, spec));
                }
                Ok(Meters(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterSpec {
    pub rate_kbps: Positive,
    pub burst_kb: Positive,
}

/// A number greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positive(pub u64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bounded_u64(d, "a positive number", 1, u64::MAX).map(Positive)
    }
}

/// One table.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub id: u8,
    #[serde(default)]
    pub flows: Vec<FlowEntry>,
}

/// One flow as written.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowEntry {
    pub name: String,
    pub priority: Priority,
    #[serde(rename = "match", default)]
    pub matches: MatchSpec,
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
    /// Seconds; 0 = never.
    #[serde(default)]
    pub idle_timeout: u32,
    #[serde(default)]
    pub hard_timeout: u32,
}

/// A custom eBPF program: `{asm: path.s}` or `{elf: path.o, section: name}`.
/// Paths are relative to the YAML file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EbpfRef {
    Asm { path: PathBuf },
    Elf { path: PathBuf, section: String },
}

impl EbpfRef {
    pub fn path(&self) -> &PathBuf {
        match self {
            EbpfRef::Asm { path } | EbpfRef::Elf { path, .. } => path,
        }
    }
}

#[derive(DeriveDeserialize)]
#[serde(deny_unknown_fields)]
struct EbpfRaw {
    asm: Option<PathBuf>,
    elf: Option<PathBuf>,
    section: Option<String>,
}

impl EbpfRaw {
    fn check(self) -> Result<EbpfRef, &'static str> {
        match (self.asm, self.elf, self.section) {
            (Some(path), None, None) => Ok(EbpfRef::Asm { path }),
            (None, Some(path), Some(section)) if !section.is_empty() => {
                Ok(EbpfRef::Elf { path, section })
            }
            (None, Some(_), _) => Err("`elf:` needs a `section:` naming the program's ELF section"),
            (Some(_), None, Some(_)) => Err("`section:` goes with `elf:`, not with `asm:`"),
            (Some(_), Some(_), _) => Err("give either `asm:` or `elf:`, not both"),
            (None, None, _) => Err("expected {asm: path.s} or {elf: path.o, section: name}"),
        }
    }
}

impl<'de> Deserialize<'de> for EbpfRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EbpfRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("{asm: path.s} or {elf: path.o, section: name}")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<EbpfRef, A::Error> {
                EbpfRaw::deserialize(de::value::MapAccessDeserializer::new(m))?
                    .check()
                    .map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}

/// The match fields; all optional, an absent field matches anything.
#[derive(Debug, Clone, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub in_port: Option<PortRef>,
    pub eth_src: Option<MacMatch>,
    pub eth_dst: Option<MacMatch>,
    pub eth_type: Option<EthType>,
    pub vlan_vid: Option<VlanMatch>,
    pub vlan_pcp: Option<Pcp>,
    pub ipv4_src: Option<Ipv4Net>,
    pub ipv4_dst: Option<Ipv4Net>,
    pub arp_spa: Option<Ipv4Net>,
    pub arp_tpa: Option<Ipv4Net>,
    pub ipv6_src: Option<Ipv6Net>,
    pub ipv6_dst: Option<Ipv6Net>,
    pub ip_proto: Option<IpProto>,
    pub ip_dscp: Option<Dscp>,
    pub ip_ecn: Option<Ecn>,
    pub tcp_src: Option<PortRange>,
    pub tcp_dst: Option<PortRange>,
    pub udp_src: Option<PortRange>,
    pub udp_dst: Option<PortRange>,
    pub tcp_flags: Option<TcpFlags>,
    pub icmp_type: Option<IcmpNum>,
    pub icmp_code: Option<IcmpNum>,
    pub icmpv6_type: Option<IcmpNum>,
    pub icmpv6_code: Option<IcmpNum>,
    pub arp_op: Option<ArpOp>,
    pub ebpf: Option<EbpfRef>,
}

/// `set_field:` rewrites.
#[derive(Debug, Clone, Default, PartialEq, Eq, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct SetFieldSpec {
    pub eth_src: Option<Mac>,
    pub eth_dst: Option<Mac>,
    pub ipv4_src: Option<Ipv4>,
    pub ipv4_dst: Option<Ipv4>,
    pub ipv6_src: Option<Ipv6>,
    pub ipv6_dst: Option<Ipv6>,
    pub ip_dscp: Option<Dscp>,
    pub tcp_src: Option<L4Port>,
    pub tcp_dst: Option<L4Port>,
    pub udp_src: Option<L4Port>,
    pub udp_dst: Option<L4Port>,
    pub vlan_vid: Option<Vid>,
    pub vlan_pcp: Option<Pcp>,
}

/// `push_vlan: VID` or `push_vlan: {vid: V, pcp: P}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushVlanSpec {
    pub vid: Vid,
    pub pcp: Pcp,
}

#[derive(DeriveDeserialize)]
#[serde(deny_unknown_fields)]
struct PushVlanMap {
    vid: Vid,
    #[serde(default = "pcp0")]
    pcp: Pcp,
}

fn pcp0() -> Pcp {
    Pcp(0)
}

impl<'de> Deserialize<'de> for PushVlanSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PushVlanSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a vlan id or {vid: V, pcp: P}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PushVlanSpec, E> {
                let vid = Vid::deserialize(de::value::U64Deserializer::<E>::new(v))?;
                Ok(PushVlanSpec { vid, pcp: Pcp(0) })
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<PushVlanSpec, A::Error> {
                let p = PushVlanMap::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(PushVlanSpec {
                    vid: p.vid,
                    pcp: p.pcp,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// One or several ports (`output: P` or `output: [P, Q]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortList(pub Vec<PortRef>);

impl<'de> Deserialize<'de> for PortList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port (id or name) or a list of ports")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortList, E> {
                PortRef::deserialize(de::value::U64Deserializer::<E>::new(v))
                    .map(|p| PortList(vec![p]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortList, E> {
                PortRef::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(|p| PortList(vec![p]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<PortList, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = s.next_element::<PortRef>()? {
                    out.push(p);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("an empty port list outputs nowhere"));
                }
                Ok(PortList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One action, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionSpec {
    Output(PortList),
    InPort,
    Flood,
    Normal,
    Drop,
    SetField(SetFieldSpec),
    PushVlan(PushVlanSpec),
    PopVlan,
    DecTtl,
    Meter(Name),
    Mirror(PortRef),
    GotoTable(u8),
    Ebpf(EbpfRef),
}

impl ActionSpec {
    /// The action's key in the YAML.
    pub fn keyword(&self) -> &'static str {
        match self {
            ActionSpec::Output(_) => "output",
            ActionSpec::InPort => "in_port",
            ActionSpec::Flood => "flood",
            ActionSpec::Normal => "normal",
            ActionSpec::Drop => "drop",
            ActionSpec::SetField(_) => "set_field",
            ActionSpec::PushVlan(_) => "push_vlan",
            ActionSpec::PopVlan => "pop_vlan",
            ActionSpec::DecTtl => "dec_ttl",
            ActionSpec::Meter(_) => "meter",
            ActionSpec::Mirror(_) => "mirror",
            ActionSpec::GotoTable(_) => "goto_table",
            ActionSpec::Ebpf(_) => "ebpf",
        }
    }
}

const SCALAR_ACTIONS: &str = "in_port, flood, normal, drop, pop_vlan, dec_ttl";
const MAP_ACTIONS: &str = "output, set_field, push_vlan, meter, mirror, goto_table, ebpf";

fn scalar_action(s: &str) -> Option<ActionSpec> {
    Some(match s {
        "in_port" => ActionSpec::InPort,
        "flood" => ActionSpec::Flood,
        "normal" => ActionSpec::Normal,
        "drop" => ActionSpec::Drop,
        "pop_vlan" => ActionSpec::PopVlan,
        "dec_ttl" => ActionSpec::DecTtl,
        _ => return None,
    })
}

/// The key of a one-key action mapping, checked while the key itself is
/// being read so that an unknown action is reported at the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapAction {
    Output,
    SetField,
    PushVlan,
    Meter,
    Mirror,
    GotoTable,
    Ebpf,
}

impl<'de> Deserialize<'de> for MapAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MapAction;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an action name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MapAction, E> {
                Ok(match v {
                    "output" => MapAction::Output,
                    "set_field" => MapAction::SetField,
                    "push_vlan" => MapAction::PushVlan,
                    "meter" => MapAction::Meter,
                    "mirror" => MapAction::Mirror,
                    "goto_table" => MapAction::GotoTable,
                    "ebpf" => MapAction::Ebpf,
                    other if scalar_action(other).is_some() => {
                        return Err(E::custom(format!(
                            "action `{other}` takes no argument: write it as a plain `{other}`"
                        )))
                    }
                    other => {
                        return Err(E::custom(format!(
                            "unknown action `{other}`; expected one of {MAP_ACTIONS} (with an argument) or {SCALAR_ACTIONS}"
                        )))
                    }
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for ActionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ActionSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an action: a name or a one-key mapping like {output: 2}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ActionSpec, E> {
                if let Some(a) = scalar_action(v) {
                    return Ok(a);
                }
                let hint = match v {
                    "output" | "set_field" | "push_vlan" | "meter" | "mirror" | "goto_table"
                    | "ebpf" => format!("action `{v}` needs an argument, like {{{v}: ...}}"),
                    _ => format!(
                        "unknown action `{v}`; expected one of {SCALAR_ACTIONS} or a mapping {{{MAP_ACTIONS}: ...}}"
                    ),
                };
                Err(E::custom(hint))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ActionSpec, A::Error> {
                let Some(kind) = m.next_key::<MapAction>()? else {
                    return Err(de::Error::custom(
                        "an empty mapping is not an action; expected like {output: 2}",
                    ));
                };
                let action = match kind {
                    MapAction::Output => ActionSpec::Output(m.next_value()?),
                    MapAction::SetField => {
                        let s: SetFieldSpec = m.next_value()?;
                        if s == SetFieldSpec::default() {
                            return Err(de::Error::custom("set_field names no field"));
                        }
                        ActionSpec::SetField(s)
                    }
                    MapAction::PushVlan => ActionSpec::PushVlan(m.next_value()?),
                    MapAction::Meter => ActionSpec::Meter(m.next_value()?),
                    MapAction::Mirror => ActionSpec::Mirror(m.next_value()?),
                    MapAction::GotoTable => ActionSpec::GotoTable(m.next_value()?),
                    MapAction::Ebpf => ActionSpec::Ebpf(m.next_value()?),
                };
                // A second key is reported while it is read, at its place.
                m.next_key::<ExtraKey>()?;
                Ok(action)
            }
        }
        d.deserialize_any(V)
    }
}

/// A key that must not be there: reading it is the error.
struct ExtraKey;

impl<'de> Deserialize<'de> for ExtraKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtraKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("no second key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExtraKey, E> {
                Err(E::custom(format!(
                    "an action is a mapping with one key; `{v}` is a second one (make it a separate list item)"
                )))
            }
        }
        d.deserialize_str(V)
    }
}
