/* flowswitch eBPF ABI for custom filter and action programs.
 *
 * Build with:  clang -O2 -target bpf -c prog.c -o prog.o
 * See docs/ebpf-abi.md for the full description.
 *
 * A program receives a pointer to struct fs_ctx. A filter returns non-zero
 * for the flow to match; an action returns 0 to continue with the flow's
 * next action, non-zero to drop the packet.
 */
#ifndef FLOWSWITCH_H
#define FLOWSWITCH_H

/* The same types as <linux/types.h> (C11 allows repeating a typedef, so
 * including both is fine; this header needs no system headers). */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

/* The flow context (128 bytes). Numbers are in host (little-endian) order:
 * a MAC address is the 48-bit number whose big-endian bytes are the address
 * (02:00:00:00:00:01 = 0x020000000001), an IPv4 address the 32-bit number
 * (10.0.0.2 = 0x0a000002), an IPv6 address two 64-bit halves, high first.
 * A field the packet does not have is 0.
 *
 * The key fields (offsets 0-79) may be read and written with loads and
 * stores of any size that stay inside one 8-byte word; data and data_end
 * only as whole 8-byte fields; l3_off, l4_off, pkt_len and table are
 * read-only; mark and scratch are free for custom programs. */
struct fs_ctx {
	/* The flow key. */
	__u32 in_port;      /*  0: ingress port id */
	__u16 eth_type;     /*  4: EtherType after any 802.1Q tag */
	__u16 vlan_tci;     /*  6: pcp << 13 | FS_VLAN_PRESENT | vid; 0 if untagged */
	__u64 eth_dst;      /*  8: 48-bit number */
	__u64 eth_src;      /* 16 */
	__u32 nw_src;       /* 24: IPv4 source or ARP sender address */
	__u32 nw_dst;       /* 28: IPv4 destination or ARP target address */
	__u64 ipv6_src_hi;  /* 32: IPv6 source, high 64 bits */
	__u64 ipv6_src_lo;  /* 40 */
	__u64 ipv6_dst_hi;  /* 48 */
	__u64 ipv6_dst_lo;  /* 56 */
	__u8 ip_proto;      /* 64: IP protocol / IPv6 upper-layer header */
	__u8 ip_tos;        /* 65: DSCP << 2 | ECN */
	__u16 arp_op;       /* 66 */
	__u16 tp_src;       /* 68: TCP/UDP source port, ICMP type */
	__u16 tp_dst;       /* 70: TCP/UDP destination port, ICMP code */
	__u16 tcp_flags;    /* 72: low 12 bits of the TCP flags */
	__u8 ip_ttl;        /* 74: IPv4 TTL / IPv6 hop limit */
	__u8 ip_frag;       /* 75: FS_FRAG_* bits */
	__u32 key_spare;    /* 76 */
	/* The packet. */
	__u64 data;         /* 80: address of the first byte of the frame */
	__u64 data_end;     /* 88: address one past the last byte */
	__u16 l3_off;       /* 96: offset of the L3 header in the frame */
	__u16 l4_off;       /* 98: offset of the L4 header, 0 if none */
	__u32 pkt_len;      /* 100: frame length */
	__u32 table;        /* 104: current table id */
	__u32 mark;         /* 108: free for custom programs */
	__u8 scratch[16];   /* 112: free for custom programs */
};

_Static_assert(sizeof(struct fs_ctx) == 128, "struct fs_ctx is 128 bytes");

#define FS_VLAN_PRESENT 0x1000
#define FS_FRAG_ANY 1
#define FS_FRAG_LATER 2

/* Return codes of a flow program (r0). Custom filters and actions do not
 * return these; see the top of this file. */
#define FS_NOMATCH 0
#define FS_DONE 1
#define FS_GOTO(table) (2 | ((table) << 8))
#define FS_DROP(reason) (3 | ((reason) << 8))
#define FS_DROP_EXPLICIT 1
#define FS_DROP_METER 2
#define FS_DROP_TTL 3
#define FS_DROP_CUSTOM 4
/* Matched; the packet goes to port as it is now, and nothing else happens:
 * the same as fs_output(ctx, port, FS_F_FINAL) followed by return FS_DONE,
 * without the helper call. */
#define FS_OUTPUT(port) (4 | ((__u64)(port) << 8))

/* flags of fs_output, fs_flood, fs_normal: nothing after this call reads or
 * changes the packet (the switch may move it instead of copying). */
#define FS_F_FINAL 1

/* Helpers. */
static long (*fs_unwind)(__u64 value) = (void *)5;
/* Sends the packet as it is now to port. */
static long (*fs_output)(struct fs_ctx *ctx, __u32 port, __u64 flags) = (void *)16;
/* Sends the packet to every port but the ingress one. */
static long (*fs_flood)(struct fs_ctx *ctx, __u64 flags) = (void *)17;
/* MAC-learning switching (learn the source, forward to the destination
 * or flood), VLAN-aware. */
static long (*fs_normal)(struct fs_ctx *ctx, __u64 flags) = (void *)18;
/* Token bucket: 1 when the packet passes, 0 when it is over the rate. */
static long (*fs_meter)(struct fs_ctx *ctx, __u32 meter) = (void *)19;
/* Push an 802.1Q tag (tci = pcp << 13 | vid): 0, or negative on failure.
 * Moves data/data_end: reload them from ctx afterwards. */
static long (*fs_push_vlan)(struct fs_ctx *ctx, __u16 tci) = (void *)20;
/* Pop the outer 802.1Q tag: 0, or negative when there is none.
 * Moves data/data_end: reload them from ctx afterwards. */
static long (*fs_pop_vlan)(struct fs_ctx *ctx) = (void *)21;

#ifndef SEC
#define SEC(name) __attribute__((section(name), used))
#endif

/* Maps. The switch declares its maps; a program refers to one through a
 * variable of the same name in the "maps" section, declared with FS_MAP,
 * whose kind and sizes must match the switch's declaration:
 *
 *     FS_MAP(counters, FS_MAP_ARRAY, __u32, __u64, 256);
 *     ...
 *     __u32 idx = ctx->in_port & 255;
 *     __u64 *n = map_lookup_elem(&counters, &idx);
 *     if (n)
 *             __sync_fetch_and_add(n, 1);
 *
 * The ELF loader turns each reference to such a variable into
 * `lddw rX, map N`. Keys and values passed to the helpers must be on the
 * stack or in a map value; a lookup's result must be checked against 0
 * before use. */
#define FS_MAP_HASH 1
#define FS_MAP_ARRAY 2

struct fs_map {
	__u32 type;         /* FS_MAP_HASH or FS_MAP_ARRAY */
	__u32 key_size;     /* bytes; 4 for an array (the index) */
	__u32 value_size;   /* bytes */
	__u32 max_entries;
};

#define FS_MAP(name, kind, key_type, value_type, entries) \
	struct fs_map name SEC("maps") = { (kind), sizeof(key_type), sizeof(value_type), (entries) }

/* map_update_elem flags. */
#define FS_ANY 0        /* create or replace */
#define FS_NOEXIST 1    /* create only */
#define FS_EXIST 2      /* replace only */

/* A pointer to the key's value, or 0. */
static void *(*map_lookup_elem)(void *map, const void *key) = (void *)1;
/* 0, or -ENOENT (-2), -EEXIST (-17), -E2BIG (-7, full), -EINVAL (-22). */
static long (*map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
/* 0, or -ENOENT (-2); -EINVAL (-22) for an array. */
static long (*map_delete_elem)(void *map, const void *key) = (void *)3;

#endif /* FLOWSWITCH_H */
