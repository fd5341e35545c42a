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
 *
 * Flow control: a redirect hands the sender's buffer back at once, and the peer's ingress
 * queue has no window. So what the peer has not read yet is kept in waggle_bypass_backlog
 * (this program adds each redirected message, bypass_recv.bpf.c sets the queue's real length
 * after each read; a direction that has redirected less than half the bound in all cannot
 * have filled the peer's queue, so it is tracked only from there on, and most connections
 * never are; a tracked direction whose peer has read every byte is untracked again, so a
 * long-lived request/response connection costs the bookkeeping only while the peer lags).
 * A message that would take it past the node's bound goes through TCP, and
 * so does every later one (BYPASS_HELD) until the peer has read every byte sent through TCP
 * (its copied_seq reached this socket's write_seq): TCP's window and this socket's send
 * buffer stop a sender whose peer does not read, and redirecting again only once the TCP
 * bytes are read keeps the stream in order.
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
	struct bypass_backlog *backlog;
	struct tcp_sock___waggle *tp;

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
	__builtin_memcpy(&peer, &b->peer, sizeof(peer));
	/*
	 * tracked, and the peer has read everything (its last read said so, nothing redirected
	 * since): its queue is empty, so this direction counts from zero again, untracked, and
	 * its entry goes (the peer's reads stop writing it)
	 */
	backlog = NULL;
	if ((b->flags & (BYPASS_TRACKED | BYPASS_HELD)) == BYPASS_TRACKED) {
		backlog = bpf_map_lookup_elem(&waggle_bypass_backlog, &peer);
		if (backlog && (backlog->flags & BACKLOG_SEQ) && !backlog->unread) {
			bpf_map_delete_elem(&waggle_bypass_backlog, &peer);
			backlog = NULL;
			b->flags &= ~BYPASS_TRACKED;
			b->untracked = 0;
		}
	}
	/*
	 * less than half the bound redirected since then cannot have filled the peer's queue:
	 * no bookkeeping; past it, the peer's entry starts with all of those bytes unread (a
	 * socket an earlier build held is tracked already)
	 */
	if (!(b->flags & (BYPASS_TRACKED | BYPASS_HELD))) {
		if ((__u64)b->untracked + size <= bypass_backlog_max() / 2) {
			if (bpf_msg_redirect_hash(msg, &waggle_bypass, &peer, BPF_F_INGRESS) != SK_PASS)
				goto fall_back;
			b->untracked += size;
			bypass_count_msg(b->netns, size);
			return SK_PASS;
		}
		b->flags |= BYPASS_TRACKED;
		bypass_backlog_start(&peer, b->untracked);
	}
	if (!backlog)
		backlog = bpf_map_lookup_elem(&waggle_bypass_backlog, &peer);
	/* held back: through TCP until the peer has read every byte that went that way */
	if (b->flags & BYPASS_HELD) {
		tp = (struct tcp_sock___waggle *)bpf_skc_to_tcp_sock(sk);
		if (!backlog) /* evicted: its next read tells again */
			bypass_backlog_start(&peer, 0);
		if (!tp || !backlog || !(backlog->flags & BACKLOG_SEQ) ||
		    backlog->copied_seq != tp->write_seq) {
			FLOW_COUNT(b->netns, bypass_backpressure_bytes, size);
			return SK_PASS;
		}
		b->flags &= ~BYPASS_HELD;
	}
	/* the peer has too much unread: hold this direction on TCP, whose window stops it */
	if (backlog && backlog->unread + size > bypass_backlog_max()) {
		b->flags |= BYPASS_HELD;
		FLOW_COUNT(b->netns, bypass_backpressure_fallbacks, 1);
		FLOW_COUNT(b->netns, bypass_backpressure_bytes, size);
		return SK_PASS;
	}
	/* the peer is in the map: hand the message to its receive queue, count it as unread */
	if (bpf_msg_redirect_hash(msg, &waggle_bypass, &peer, BPF_F_INGRESS) == SK_PASS) {
		if (backlog)
			__sync_fetch_and_add(&backlog->unread, size);
		else
			bypass_backlog_start(&peer, size);
		bypass_count_msg(b->netns, size);
		return SK_PASS;
	}
fall_back:
	/* it is not (not yet, or gone): this direction stays on TCP for good */
	b->flags |= BYPASS_TCP;
	BYPASS_COUNT(b->netns, bypass_fallbacks, 1);
	return SK_PASS;
}
