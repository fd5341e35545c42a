// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket bypass, the receiving half of its flow control: a BTF tracepoint program on
 * sock_recv_length, which the kernel fires after every recvmsg/read of a socket
 * (sock_recvmsg_nosec), attached once per node as a pinned raw tracepoint link. (An fexit on
 * sk_msg_recvmsg would fire for ingress-queue reads alone, but kernels that refuse BPF
 * trampolines, e.g. some VM guests, refuse to load it: the tracepoint needs none.)
 *
 * After each read of a socket that joined the bypass, the bytes still waiting in its ingress
 * queue (struct sk_psock's msg_tot_len) and how far it has read its TCP stream (copied_seq)
 * become its entry in waggle_bypass_backlog, which the sk_msg program (bypass.bpf.c) checks
 * before each redirect. Only the entry its sender made is written: a receiver nobody tracks
 * (less than half the bound was sent to it since it last had nothing unread) costs one
 * lookup per read. Between its add and this set the entry may count a message twice or miss
 * one: the error is at most a message, and the next read corrects it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "waggle/bypass.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* sk_user_data's low bits (SK_USER_DATA_* in include/net/sock.h): set when it is a psock */
#define SK_USER_DATA_PSOCK 4ul
#define SK_USER_DATA_PTRMASK (~7ul)

/* the fields read from the kernel's structs, relocated by libbpf at load (CO-RE) */
struct sock___waggle {
	void *sk_user_data;
} __attribute__((preserve_access_index));

struct sk_psock___waggle {
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

SEC("tp_btf/sock_recv_length")
int BPF_PROG(waggle_bypass_recv, struct sock___waggle *sk, int ret, int flags)
{
	struct tcp_sock___waggle *tp;
	struct sk_psock___waggle *psock;
	struct bypass_backlog *v;
	struct bypass_key own;
	struct bypass_sock *b;
	unsigned long data;

	/* a read that took nothing (EAGAIN, an error, end of stream) changed no queue */
	if (ret <= 0)
		return 0;
	/* a socket of the bypass (every socket's reads come through here) */
	b = bpf_sk_storage_get(&waggle_bypass_sock, sk, 0, 0);
	if (!b)
		return 0;
	/* whose sender tracks what it has not read (bypass.bpf.c makes the entry) */
	bypass_own_key(b, &own);
	v = bpf_map_lookup_elem(&waggle_bypass_backlog, &own);
	if (!v)
		return 0;
	/* its psock, which holds the ingress queue (gone once the socket left the map) */
	data = (unsigned long)sk->sk_user_data;
	if (!(data & SK_USER_DATA_PSOCK))
		return 0;
	psock = bpf_rdonly_cast((void *)(data & SK_USER_DATA_PTRMASK),
				bpf_core_type_id_kernel(struct sk_psock___waggle));
	/* what is left in its ingress queue, and how far its TCP stream is read, in place */
	tp = (struct tcp_sock___waggle *)bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	v->unread = psock->msg_tot_len;
	v->copied_seq = tp->copied_seq;
	v->flags = BACKLOG_SEQ;
	return 0;
}
