/* Custom filter and action used by the compiler tests (built with
 * clang -O2 -target bpf when clang is available). */
#include "flowswitch.h"

/* Matches TCP segments whose payload starts with "GET". */
SEC("filter/http_get")
int http_get(struct fs_ctx *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (ctx->ip_proto != 6 || ctx->l4_off == 0)
		return 0;
	__u8 *tcp = (__u8 *)data + ctx->l4_off;
	if ((void *)(tcp + 20) > end)
		return 0;
	__u8 *payload = tcp + ((tcp[12] >> 4) * 4);
	if ((void *)(payload + 3) > end)
		return 0;
	return payload[0] == 'G' && payload[1] == 'E' && payload[2] == 'T';
}

/* Counts packets in mark and bytes in scratch, drops telnet, copies the
 * rest to port 9 and rewrites the destination MAC in the packet and key. */
SEC("action/count")
int count(struct fs_ctx *ctx)
{
	ctx->mark += 1;
	__u64 *bytes = (__u64 *)ctx->scratch;
	*bytes += ctx->pkt_len;
	if (ctx->tp_dst == 23)
		return 1;
	fs_output(ctx, 9, 0);
	__u8 *data = (__u8 *)(long)ctx->data;
	if ((void *)(data + 6) > (void *)(long)ctx->data_end)
		return 0;
	data[5] = 0x99;
	ctx->eth_dst = (ctx->eth_dst & ~0xffULL) | 0x99;
	return 0;
}
