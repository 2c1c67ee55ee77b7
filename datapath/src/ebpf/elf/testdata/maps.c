/* Test program for the ELF loader (datapath/src/ebpf/elf/tests.rs).
 * Built with: clang -O2 -target bpf -c maps.c -o maps.o
 * (the test rebuilds it when clang is there; maps.o is the committed build). */
#include "../../../../include/flowswitch.h"

FS_MAP(counters, FS_MAP_ARRAY, __u32, __u64, 4);
FS_MAP(seen, FS_MAP_HASH, __u64, __u32, 8);

/* Not inlined and in no section of their own: clang puts them in .text
 * and the loader appends it (calls to the global function are relocated
 * against its symbol, to the static one against the section's). */
static __attribute__((noinline)) __u32 low_bits(__u32 v, __u32 n)
{
	return v & ((1u << n) - 1);
}

__attribute__((noinline)) __u32 bucket(__u32 port)
{
	return low_bits(port, 2);
}

/* Counts packets per ingress port (mod 4) in `counters`, and per source
 * MAC in `seen`. Always continues. */
SEC("action/count")
int count(struct fs_ctx *ctx)
{
	__u32 idx = bucket(ctx->in_port);
	__u64 *n = map_lookup_elem(&counters, &idx);
	if (n)
		__sync_fetch_and_add(n, 1);
	__u64 src = ctx->eth_src;
	__u32 *c = map_lookup_elem(&seen, &src);
	if (c) {
		*c += 1;
	} else {
		__u32 one = 1;
		map_update_elem(&seen, &src, &one, FS_NOEXIST);
	}
	return 0;
}

/* Matches sources seen at least twice. */
SEC("filter/known")
int known(struct fs_ctx *ctx)
{
	__u64 src = ctx->eth_src;
	__u32 *c = map_lookup_elem(&seen, &src);
	return c && *c >= 2;
}

/* Refers to global data: refused. */
__u32 global_counter;

SEC("action/global")
int uses_global(struct fs_ctx *ctx)
{
	global_counter += 1;
	return 0;
}
