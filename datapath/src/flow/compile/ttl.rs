//! `dec_ttl`: IPv4 TTL (with the header checksum) or IPv6 hop limit minus
//! one; at 0 or 1 the program returns DROP(ttl). Other frames are left
//! alone. The key's `ip_ttl` follows the packet.

use super::emit::{Emitter, Label};
use super::matchgen::Facts;
use super::pkt::{eth_possible, fold, l3, off, R_CTX, R_HDR};
use crate::ebpf::insn::{AluOp, Cond};
use crate::flow::key::{OFF_ETH_TYPE, OFF_IP_TTL};
use crate::packet::{ETH_TYPE_IPV4, ETH_TYPE_IPV6};

/// Emits `dec_ttl`; `drop` returns DROP(ttl).
pub fn emit(e: &mut Emitter, facts: &Facts, drop: Label) {
    let v4 = eth_possible(facts, ETH_TYPE_IPV4);
    let v6 = eth_possible(facts, ETH_TYPE_IPV6);
    if !v4 && !v6 {
        return;
    }
    let end = e.label();
    let not_v4 = e.label();
    let known = facts.eth_type.is_some();
    if !known {
        e.ldx(2, 1, R_CTX, off(OFF_ETH_TYPE));
    }
    if v4 {
        if !known {
            e.jmp_imm(true, Cond::Ne, 1, i32::from(ETH_TYPE_IPV4), not_v4);
        }
        l3(e, 20, end);
        e.ldx(1, 2, R_HDR, 8);
        e.jmp_imm(true, Cond::Le, 2, 1, drop);
        // The TTL is the high byte of the big-endian word at 8, the low byte
        // of the word as loaded: that word drops by one, so
        // HC' = ~(~HC + ~m + m - 1) = ~(~HC + 0xfffe).
        e.ldx(2, 3, R_HDR, 10);
        e.alu64_imm(AluOp::Xor, 3, 0xffff);
        e.alu64_imm(AluOp::Add, 3, 0xfffe);
        fold(e, 3, 4, 0xffff + 0xfffe);
        e.alu64_imm(AluOp::Xor, 3, 0xffff);
        e.stx(2, R_HDR, 3, 10);
        e.alu64_imm(AluOp::Sub, 2, 1);
        e.stx(1, R_HDR, 2, 8);
        e.stx(1, R_CTX, 2, off(OFF_IP_TTL));
        if v6 {
            e.ja(end);
        }
    }
    e.bind(not_v4);
    if v6 {
        if !known {
            e.jmp_imm(true, Cond::Ne, 1, i32::from(ETH_TYPE_IPV6), end);
        }
        l3(e, 40, end);
        e.ldx(1, 2, R_HDR, 7);
        e.jmp_imm(true, Cond::Le, 2, 1, drop);
        e.alu64_imm(AluOp::Sub, 2, 1);
        e.stx(1, R_HDR, 2, 7);
        e.stx(1, R_CTX, 2, off(OFF_IP_TTL));
    }
    e.bind(end);
}
