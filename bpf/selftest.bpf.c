// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Programs and maps the ebpf-napi kernel tests drive (test/kernel/ebpf-napi.test.ts); not
 * part of waggle's datapath.
 *
 * selftest_connect4 / selftest_connect4_v2: cgroup/connect4 programs that rewrite a
 * destination port (slot 0 resp. 1 of selftest_rewrite) and count what they rewrote, so a
 * test can tell which of the two is attached. They also record the cgroup id and netns
 * cookie the program sees. selftest_count_packets: a TC classifier counting packets per CPU.
 * selftest_rejected: fails the verifier on purpose (autoload off unless a test turns it on).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* A port rewrite: connects to 127.0.0.1:from go to 127.0.0.1:to (host order). */
struct rewrite {
	__u16 from;
	__u16 to;
};

/* What the connect4 program saw at its last rewrite. */
struct seen {
	__u64 cgroup_id;
	__u64 netns_cookie;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct rewrite);
} selftest_rewrite SEC(".maps");

/* Rewrites done, per program variant (slot 0: v1, slot 1: v2). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} selftest_rewrites SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct seen);
} selftest_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} selftest_packets SEC(".maps");

/* Plain maps for the map API round trips. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} selftest_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} selftest_percpu_hash SEC(".maps");

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} selftest_lpm SEC(".maps");

static __always_inline int rewrite_connect4(struct bpf_sock_addr *ctx, __u32 slot)
{
	struct rewrite *rw = bpf_map_lookup_elem(&selftest_rewrite, &slot);
	__u32 zero = 0;
	struct seen *seen;
	__u64 *count;

	if (!rw || rw->from == 0 || ctx->user_port != bpf_htons(rw->from))
		return 1;
	ctx->user_port = bpf_htons(rw->to);
	count = bpf_map_lookup_elem(&selftest_rewrites, &slot);
	if (count)
		__sync_fetch_and_add(count, 1);
	seen = bpf_map_lookup_elem(&selftest_seen, &zero);
	if (seen) {
		seen->cgroup_id = bpf_get_current_cgroup_id();
		seen->netns_cookie = bpf_get_netns_cookie(ctx);
	}
	return 1;
}

SEC("cgroup/connect4")
int selftest_connect4(struct bpf_sock_addr *ctx)
{
	return rewrite_connect4(ctx, 0);
}

SEC("cgroup/connect4")
int selftest_connect4_v2(struct bpf_sock_addr *ctx)
{
	return rewrite_connect4(ctx, 1);
}

SEC("tc")
int selftest_count_packets(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&selftest_packets, &zero);

	if (count)
		*count += 1; /* per-CPU slot: no atomics needed */
	return TC_ACT_OK;
}

/* Dereferences a hash lookup without a NULL check: the verifier must reject it. */
SEC("?cgroup/connect4")
int selftest_rejected(struct bpf_sock_addr *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&selftest_hash, &key);

	return *value == 7;
}

/* sockmap links: a sockhash and two sk_msg programs that pass every message */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} selftest_sockhash SEC(".maps");

SEC("sk_msg")
int selftest_msg_pass(struct sk_msg_md *msg)
{
	return SK_PASS;
}

SEC("sk_msg")
int selftest_msg_pass_v2(struct sk_msg_md *msg)
{
	return SK_PASS;
}

/* tracing links: counts the socket reads (tracepoint sock_recv_length) of one process */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} selftest_reads SEC(".maps"); /* [0]: the process (tgid) to watch, [1]: its reads */

struct sock;

SEC("?tp_btf/sock_recv_length")
int BPF_PROG(selftest_recv, struct sock *sk, int ret, int flags)
{
	__u32 zero = 0, one = 1;
	__u64 *tgid = bpf_map_lookup_elem(&selftest_reads, &zero);
	__u64 *reads = bpf_map_lookup_elem(&selftest_reads, &one);

	if (tgid && reads && *tgid == bpf_get_current_pid_tgid() >> 32)
		__sync_fetch_and_add(reads, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
