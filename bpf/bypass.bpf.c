// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket bypass, the sk_msg half: attached to waggle_bypass (one pinned sockmap link per
 * node), it runs for every message a socket in that map sends (bypass.h says who joins).
 *
 * Each message goes straight to the peer socket's receive side (its psock ingress queue,
 * bpf_msg_redirect_hash with BPF_F_INGRESS) while the peer is in the map; otherwise it goes
 * through TCP unchanged. The choice is sticky per direction: once one byte a socket sent went
 * through TCP, every later byte does too. The receiver reads its ingress queue before its
 * TCP receive queue, so TCP bytes followed by redirected bytes could be read out of order;
 * redirected bytes followed by TCP bytes cannot (the ingress queue drains first).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "waggle/bypass.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("sk_msg")
int waggle_bypass_msg(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	struct bypass_key peer;
	struct bypass_sock *b;
	__u64 size = msg->size;

	/* the decision sockops stored with the socket */
	if (!sk)
		return SK_PASS;
	b = bpf_sk_storage_get(&waggle_bypass_sock, sk, 0, 0);
	if (!b || (b->flags & BYPASS_TCP))
		return SK_PASS;
	/*
	 * sending side shut down (or closing): TCP refuses the bytes with EPIPE as it would
	 * (tcp_bpf_sendmsg checks only sk_err, so a redirect would deliver them after the FIN)
	 */
	if (sk->state != BPF_TCP_ESTABLISHED && sk->state != BPF_TCP_CLOSE_WAIT)
		return SK_PASS;
	/* the peer is in the map: hand the message to its receive queue */
	__builtin_memcpy(&peer, &b->peer, sizeof(peer));
	if (bpf_msg_redirect_hash(msg, &waggle_bypass, &peer, BPF_F_INGRESS) == SK_PASS) {
		BYPASS_COUNT(b->netns, bypass_msgs, 1);
		BYPASS_COUNT(b->netns, bypass_bytes, size);
		return SK_PASS;
	}
	/* it is not (not yet, or gone): this direction stays on TCP for good */
	b->flags |= BYPASS_TCP;
	BYPASS_COUNT(b->netns, bypass_fallbacks, 1);
	return SK_PASS;
}
