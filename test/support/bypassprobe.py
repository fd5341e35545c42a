#!/usr/bin/python3
"""bypassprobe: one TCP connection, one semantics case, both ends (python3, standard library).

  bypassprobe.py serve HOST:PORT CASE [ARG]     listens, prints {"event": "ready"}, accepts ONE
                                                connection, runs the server side of CASE
  bypassprobe.py connect HOST:PORT CASE [ARG]   connects (from $BYPASSPROBE_BIND when set),
                                                runs the client side of CASE

Each side prints one line {"event": "result", "case": CASE, ...observations} and exits 0.
Observations are what an application could see (bytes and their SHA-256, return values,
errno names, epoll masks), never timings, so a run over plain TCP and a run over the socket
bypass must print the same lines. HOST:PORT is "10.0.0.2:80" or "[fd00::2]:80".
Payloads are deterministic: random.Random(seed).randbytes(n).
"""

import ctypes
import errno
import hashlib
import json
import os
import random
import select
import socket
import struct
import sys
import tempfile
import threading
import time

TIMEOUT = 60
TCP_CORK = 3
SO_NETNS_COOKIE = 71
FIONREAD = 0x541B
EPOLLRDHUP = 0x2000


def parse_addr(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, host, int(port)
    host, _, port = text.partition(":")
    return socket.AF_INET, host, int(port)


def payload(seed, n):
    return random.Random(seed).randbytes(n)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else type(e).__name__


def recv_all(s, bufsize=262144):
    """Reads until EOF; returns (bytes, the error that ended it or None)."""
    chunks = []
    try:
        while True:
            b = s.recv(bufsize)
            if not b:
                return b"".join(chunks), None
            chunks.append(b)
    except OSError as e:
        return b"".join(chunks), err_name(e)


def send_in_pieces(s, data, seed):
    """sendall in pieces of varied sizes (1 byte to 1 MiB): many message boundaries."""
    rng = random.Random(seed)
    off = 0
    while off < len(data):
        n = min(len(data) - off, rng.choice([1, 7, 100, 1460, 4096, 65536, 1 << 20]))
        s.sendall(data[off : off + n])
        off += n


def stream_report(prefix, data, error=None):
    out = {f"{prefix}Bytes": len(data), f"{prefix}Sha": sha(data)}
    if error:
        out[f"{prefix}Error"] = error
    return out


# --- cases: (server(conn, arg) -> dict, client(sock, arg) -> dict) ------------------------------


def stream_sizes(arg):
    up, _, down = arg.partition(":")
    return int(up), int(down or "0")


def stream_server(c, arg):
    up, down = stream_sizes(arg)
    data, err = recv_all(c)
    out = stream_report("received", data, err)
    sent = payload(2, down)
    send_in_pieces(c, sent, 3)
    c.close()
    return {**out, **stream_report("sent", sent)}


def stream_client(s, arg):
    up, down = stream_sizes(arg)
    sent = payload(1, up)
    send_in_pieces(s, sent, 4)
    s.shutdown(socket.SHUT_WR)
    data, err = recv_all(s)
    return {**stream_report("sent", sent), **stream_report("received", data, err)}


def recv_exactly(s, n):
    """Reads exactly n bytes (fewer only at EOF)."""
    chunks, got = [], 0
    while got < n:
        b = s.recv(min(262144, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def caught_up_server(c, arg):
    """Reads the first `up` bytes, answers one byte once it has them all, then reads to EOF."""
    up, _ = stream_sizes(arg)
    first = recv_exactly(c, up)
    c.sendall(b"k")
    rest, err = recv_all(c)
    c.close()
    return stream_report("received", first + rest, err)


def caught_up_client(s, arg):
    """Sends `up` bytes, waits until the peer has read them all (its answer), then `tail` more."""
    up, tail = stream_sizes(arg)
    first, rest = payload(1, up), payload(2, tail)
    send_in_pieces(s, first, 4)
    answer = recv_exactly(s, 1)
    send_in_pieces(s, rest, 5)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {"answer": answer.decode(), **stream_report("sent", first + rest)}


def duplex(c, seed_out, n):
    """Sends n bytes while reading until EOF, at the same time."""
    sent = payload(seed_out, n)
    got = {}

    def reader():
        got["data"], got["err"] = recv_all(c)

    t = threading.Thread(target=reader)
    t.start()
    send_in_pieces(c, sent, seed_out + 10)
    c.shutdown(socket.SHUT_WR)
    t.join()
    return {**stream_report("sent", sent), **stream_report("received", got["data"], got["err"])}


def duplex_server(c, arg):
    return duplex(c, 2, int(arg))


def duplex_client(s, arg):
    return duplex(s, 1, int(arg))


def halfclose_server(c, arg):
    chunks = []
    while True:
        b = c.recv(65536)
        chunks.append(len(b))
        if not b:
            break
    data_len = sum(chunks)
    c.sendall(b"response after your FIN")
    c.close()
    return {"receivedBytes": data_len, "eofSeen": chunks[-1] == 0}


def halfclose_client(s, arg):
    s.sendall(b"request" * 1000)
    s.shutdown(socket.SHUT_WR)
    try:
        s.send(b"x")
        after = "sent"
    except OSError as e:
        after = err_name(e)
    data, err = recv_all(s)
    return {"sendAfterShutdown": after, "received": data.decode(), "receivedError": err}


def finorder_server(c, arg):
    time.sleep(0.3)  # data and FIN are both queued before the first read
    reads = []
    while True:
        b = c.recv(int(arg))
        reads.append(b)
        if not b:
            break
    data = b"".join(reads)
    return {**stream_report("received", data), "lastReadEmpty": reads[-1] == b""}


def finorder_client(s, arg):
    sent = payload(5, 100_000)
    s.sendall(sent)
    s.shutdown(socket.SHUT_WR)
    data, err = recv_all(s)
    return {**stream_report("sent", sent), **stream_report("received", data, err)}


def unread_close_server(c, arg):
    time.sleep(0.3)  # the client's bytes are here, unread
    c.close()
    return {"closed": True}


def unread_close_client(s, arg):
    s.sendall(b"u" * 1000)
    time.sleep(0.8)
    out = {}
    try:
        out["recv"] = len(s.recv(100))
    except OSError as e:
        out["recv"] = err_name(e)
    try:
        s.send(b"after")
        time.sleep(0.2)
        s.send(b"after")
        out["send"] = "sent"
    except OSError as e:
        out["send"] = err_name(e)
    return out


def peek_server(c, arg):
    time.sleep(0.3)
    first = c.recv(5, socket.MSG_PEEK)
    second = c.recv(5, socket.MSG_PEEK)
    whole = c.recv(100)
    rest, _ = recv_all(c)
    return {
        "peek1": first.decode(),
        "peek2": second.decode(),
        "read": whole.decode(),
        "rest": rest.decode(),
    }


def peek_client(s, arg):
    s.sendall(b"hello world")
    time.sleep(0.1)
    s.sendall(b"!")
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {}


def waitall_server(c, arg):
    c.settimeout(None)  # a blocking socket: with a timeout Python polls, then reads what is there
    c.sendall(b"go")  # the client starts sending while this recv waits
    got = c.recv(3000, socket.MSG_WAITALL)
    rest, _ = recv_all(c)
    return {"waitallBytes": len(got), "restBytes": len(rest), **stream_report("waitall", got)}


def waitall_client(s, arg):
    s.recv(2)
    time.sleep(0.1)
    for i in range(3):
        s.sendall(payload(10 + i, 1000))
        time.sleep(0.15)
    s.sendall(b"tail")
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {}


def masks(events):
    return sorted(ev for _, ev in events)


def epoll_level_server(c, arg):
    c.setblocking(False)
    ep = select.epoll()
    ep.register(c.fileno(), select.EPOLLIN | EPOLLRDHUP)
    first = masks(ep.poll(5))
    a = c.recv(10)
    again = masks(ep.poll(0))
    b = c.recv(1000)
    drained = masks(ep.poll(0.2))
    c.sendall(b"go")  # the client shuts down its side now
    closed = masks(ep.poll(5))
    tail = c.recv(10)
    return {
        "first": first,
        "afterPartialRead": again,
        "afterDrain": drained,
        "afterPeerShutdown": closed,
        "reads": [len(a), len(b), len(tail)],
    }


def epoll_level_client(s, arg):
    s.sendall(b"L" * 100)
    s.recv(2)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {}


def epoll_edge_server(c, arg):
    c.setblocking(False)
    ep = select.epoll()
    ep.register(c.fileno(), select.EPOLLIN | select.EPOLLET)
    first = masks(ep.poll(5))
    a = c.recv(10)
    quiet = masks(ep.poll(0.3))  # no new data: no new edge
    c.sendall(b"more")
    second = masks(ep.poll(5))
    time.sleep(0.2)
    b = c.recv(100000)
    c.sendall(b"done")
    return {"first": first, "noNewData": quiet, "newData": second, "reads": [len(a), len(b)]}


def epoll_edge_client(s, arg):
    s.sendall(b"E" * 100)
    s.recv(4)
    s.sendall(b"F" * 50)
    s.recv(4)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {}


def fionread_server(c, arg):
    time.sleep(0.3)
    buf = bytearray(4)
    import fcntl

    fcntl.ioctl(c.fileno(), FIONREAD, buf)
    n = struct.unpack("i", buf)[0]
    data, _ = recv_all(c)
    return {"fionread": n, "receivedBytes": len(data)}


def fionread_client(s, arg):
    s.sendall(b"F" * 100)
    time.sleep(0.6)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {}


def digest_server(c, arg):
    data, err = recv_all(c)
    return stream_report("received", data, err)


def sendfile_client(s, arg):
    data = payload(7, int(arg))
    s.settimeout(None)  # blocking, as nginx's sendfile would wait for room
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        off = 0
        while off < len(data):
            off += os.sendfile(s.fileno(), f.fileno(), off, len(data) - off)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return stream_report("sent", data)


def splice_server(c, arg):
    r, w = os.pipe()
    chunks = []
    c.settimeout(None)
    err = None
    try:
        while True:
            n = os.splice(c.fileno(), w, 65536)
            if n == 0:
                break
            chunks.append(os.read(r, n))
    except OSError as e:
        err = err_name(e)
    return stream_report("received", b"".join(chunks), err)


def send_client(s, arg):
    data = payload(8, int(arg))
    send_in_pieces(s, data, 9)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return stream_report("sent", data)


def zero_client(s, arg):
    results = [s.send(b""), s.sendmsg([]), s.sendmsg([b"", b""])]
    s.sendall(b"x")
    results.append(s.send(b""))
    s.sendall(b"y")
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {"zeroSends": results}


def zero_server(c, arg):
    time.sleep(0.3)
    reads = []
    while True:
        b = c.recv(100)
        reads.append(b.decode())
        if not b:
            break
    return {"received": "".join(reads), "emptyReads": reads.count("")}


def cork_client(s, arg):
    s.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 1)
    for i in range(3):
        s.send(b"c%d" % i * 10)
    s.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 0)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(3):
        s.send(b"n%d" % i)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {}


def handoff_client(s, arg):
    """A forked child (another process) sends; the parent closes its copy first."""
    data = payload(11, int(arg))
    pid = os.fork()
    if pid == 0:
        try:
            send_in_pieces(s, data, 12)
            s.shutdown(socket.SHUT_WR)
            recv_all(s)
        finally:
            os._exit(0)
    s.close()
    _, status = os.waitpid(pid, 0)
    return {**stream_report("sent", data), "childStatus": status}


def bpf_syscall(cmd, attr):
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    ret = libc.syscall(321, cmd, buf, len(attr))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def bypass_key(sock):
    """The socket's waggle_bypass key (abi.h struct bypass_key)."""
    netns = struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]

    def addr16(host):
        if sock.family == socket.AF_INET:
            return b"\0" * 10 + b"\xff\xff" + socket.inet_pton(socket.AF_INET, host)
        return socket.inet_pton(socket.AF_INET6, host)

    local, remote = sock.getsockname(), sock.getpeername()
    return struct.pack(
        "Q16s16sHHI", netns, addr16(local[0]), addr16(remote[0]), local[1], remote[1], 0
    )


def sticky_server(c, arg):
    """
    Takes this socket out of waggle_bypass (ARG: the map's pin) before the client's first
    bytes, so they go through TCP, then puts it back: every later byte must still go through
    TCP, and the stream must arrive in order.
    """
    key = bypass_key(c)
    path = ctypes.create_string_buffer(arg.encode())
    obj_get = struct.pack("QII", ctypes.addressof(path), 0, 0)
    map_fd = bpf_syscall(7, obj_get)  # BPF_OBJ_GET
    keybuf = ctypes.create_string_buffer(key, len(key))
    try:  # BPF_MAP_DELETE_ELEM
        bpf_syscall(3, struct.pack("IIQQQ", map_fd, 0, ctypes.addressof(keybuf), 0, 0))
        joined = True
    except FileNotFoundError:
        joined = False  # the run over plain TCP: the socket never joined
    c.sendall(b"1")  # the client sends its first chunk now
    time.sleep(0.3)
    if joined:
        val = ctypes.create_string_buffer(struct.pack("Q", c.fileno()), 8)
        bpf_syscall(  # BPF_MAP_UPDATE_ELEM, BPF_NOEXIST
            2, struct.pack("IIQQQ", map_fd, 0, ctypes.addressof(keybuf), ctypes.addressof(val), 1)
        )
    c.sendall(b"2")  # and the rest now
    time.sleep(0.5)  # read once both have arrived: a redirected rest would sit in the ingress queue
    data, err = recv_all(c)
    return stream_report("received", data, err)


def sticky_client(s, arg):
    first = payload(20, 50_000)
    rest = payload(21, 50_000)
    s.recv(1)
    s.sendall(first)
    s.recv(1)
    for i in range(0, len(rest), 1000):
        s.sendall(rest[i : i + 1000])
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return stream_report("sent", first + rest)


def paced_client(s, arg):
    """ARG chunks of 64 KiB, 50 ms apart (seconds of traffic while the test acts)."""
    data = payload(30, int(arg) * 65536)
    for i in range(0, len(data), 65536):
        s.sendall(data[i : i + 65536])
        time.sleep(0.05)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return stream_report("sent", data)


def peer_exit_server(c, arg):
    """Reads 1 MiB, then the process dies with the rest unread."""
    got = 0
    while got < 1 << 20:
        got += len(c.recv(65536))
    emit({"event": "result", "case": "peer-exit", "readBeforeExit": got >= 1 << 20})
    os._exit(0)


def peer_exit_client(s, arg):
    data = payload(31, 64 << 20)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        outcome = "no error"
    except OSError as e:
        # which of the two TCP gives depends on timing, over TCP as over the bypass
        outcome = "reset or broken pipe" if e.errno in (errno.EPIPE, errno.ECONNRESET) else err_name(e)
    return {"outcome": outcome}


def backpressure_server(c, arg):
    """Reads nothing until the client says how far it got, then drains."""
    c.settimeout(None)
    time.sleep(2.5)
    data, err = recv_all(c)
    return stream_report("received", data, err)


def backpressure_client(s, arg):
    """arg "LIMIT[:MORE]": non-blocking writes of 64 KiB (distinct bytes) to a peer that does
    not read, up to LIMIT bytes: does the sender meet EAGAIN, after how many bytes? Then, once
    the peer has read for a while, MORE bytes in 64 KiB writes 20 ms apart. The peer's
    checksum covers everything written."""
    limit, _, more = arg.partition(":")
    limit, more = int(limit), int(more or "0")
    s.setblocking(False)
    data = payload(7, limit + more)
    sent = 0
    blocked = False
    while sent < limit:
        try:
            sent += s.send(data[sent : min(sent + 65536, limit)])
        except BlockingIOError:
            blocked = True
            break
    stopped_at = sent
    s.setblocking(True)
    if more:
        time.sleep(3.5)  # the peer starts reading at 2.5 s
        end = sent + more
        while sent < end:
            s.sendall(data[sent : min(sent + 65536, end)])
            sent = min(sent + 65536, end)
            time.sleep(0.02)
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    return {
        "blocked": blocked,
        "sentBelowLimit": stopped_at < limit,
        "stoppedAt": stopped_at,
        **stream_report("sent", data[:sent]),
    }


TCP_FASTOPEN = 23
TCPI_OPT_SYN_DATA = 32


def tfo_client(s, arg):
    """TCP Fast Open: the first bytes travel in the SYN (sendto MSG_FASTOPEN, no connect)."""
    family, host, port = parse_addr(arg)
    data = payload(40, 200_000)
    n = s.sendto(data[:1000], socket.MSG_FASTOPEN, (host, port))
    s.sendall(data[n:])
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    s.shutdown(socket.SHUT_WR)
    got, err = recv_all(s)
    return {
        **stream_report("sent", data),
        **stream_report("received", got, err),
        "synData": bool(info[5] & TCPI_OPT_SYN_DATA),
    }


def tfo_server(c, arg):
    data, err = recv_all(c)
    reply = payload(41, 100_000)
    c.sendall(reply)
    c.close()
    return {**stream_report("received", data, err), **stream_report("sent", reply)}


CASES = {
    "tfo": (tfo_server, tfo_client),
    "backpressure": (backpressure_server, backpressure_client),
    "paced": (digest_server, paced_client),
    "peer-exit": (peer_exit_server, peer_exit_client),
    "stream": (stream_server, stream_client),
    "caught-up": (caught_up_server, caught_up_client),
    "duplex": (duplex_server, duplex_client),
    "halfclose": (halfclose_server, halfclose_client),
    "finorder": (finorder_server, finorder_client),
    "unread-close": (unread_close_server, unread_close_client),
    "peek": (peek_server, peek_client),
    "waitall": (waitall_server, waitall_client),
    "epoll-level": (epoll_level_server, epoll_level_client),
    "epoll-edge": (epoll_edge_server, epoll_edge_client),
    "fionread": (fionread_server, fionread_client),
    "sendfile": (digest_server, sendfile_client),
    "splice": (splice_server, send_client),
    "zero": (zero_server, zero_client),
    "cork": (digest_server, cork_client),
    "handoff": (digest_server, handoff_client),
    "sticky": (sticky_server, sticky_client),
}


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def main():
    role, addr, case = sys.argv[1], sys.argv[2], sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else ""
    server, client = CASES[case]
    family, host, port = parse_addr(addr)
    if role == "serve":
        ls = socket.socket(family, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if case == "tfo":
            ls.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 16)
        ls.bind((host, port))
        ls.listen(16)
        emit({"event": "ready"})
        ls.settimeout(TIMEOUT)
        c, _ = ls.accept()
        c.settimeout(TIMEOUT)
        result = server(c, arg)
    else:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        if os.environ.get("BYPASSPROBE_BIND"):  # e.g. the proxy's passthrough source 127.0.0.6
            s.bind((os.environ["BYPASSPROBE_BIND"], 0))
        if case != "tfo":  # Fast Open connects with its first sendto
            s.connect((host, port))
        result = client(s, arg)
    emit({"event": "result", "case": case, **result})


if __name__ == "__main__":
    main()
