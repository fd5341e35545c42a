#!/usr/bin/python3
"""sockprobe: the socket tool of waggle's capture tests (python3, standard library only).

Every output line is one JSON object, so a test reads exactly what each socket saw.

  sockprobe.py listen SPEC...    SPEC = {"name": "...", "proto": "tcp"|"udp", "addr": "HOST:PORT"}
      Binds every listener (IPv6 ones with IPV6_V6ONLY), prints {"event": "ready"}, then one
      line per accepted connection or received datagram and runs until killed.
      TCP: {"event": "accept", "listener", "proto", "local", "peer", "originalDst",
            "originalDstError"}: local/peer of the accepted socket and what
            getsockopt(SOL_IP, SO_ORIGINAL_DST) (IPv6: SOL_IPV6, IP6T_SO_ORIGINAL_DST) returned,
            or the errno name. The same line is written to the client, then the socket closes.
      UDP: {"event": "datagram", "listener", "proto", "local", "peer", "payload"}: local is the
            datagram's destination (IP_PKTINFO); the line is sent back as the reply, from that
            same address.
  sockprobe.py connect SPEC...   SPEC = {"proto": "tcp"|"udp", "to": "HOST:PORT", "bind"?: "HOST[:PORT]",
                                         "timeout"?: seconds, "payload"?: "..."}
      One line per SPEC: {"result": "connected"|"replied"|"refused"|"timeout"|"error", "errno"?,
      "local"?, "peer"?, "reply"?: <the listener's JSON line or null>, "replyFrom"? (UDP)}.
  sockprobe.py http-get URL [TIMEOUT]
      {"result": "ok", "status", "body"} or {"result": "error", "error"}.

HOST:PORT is "10.0.0.2:80" or "[fd00::2]:80".
"""

import errno
import http.client
import json
import selectors
import socket
import struct
import sys
import urllib.parse

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IP6T_SO_ORIGINAL_DST = 80  # linux/netfilter_ipv6/ip6_tables.h
IP_PKTINFO = 8
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50


def parse_addr(text, default_port=None):
    """'1.2.3.4:80' / '[::1]:80' / '1.2.3.4' (with default_port) -> (family, host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        family = socket.AF_INET6
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port, family = text, None, socket.AF_INET6
    else:
        host, _, port = text.partition(":")
        family = socket.AF_INET
    if not port:
        if default_port is None:
            raise ValueError(f"address {text!r} has no port")
        port = default_port
    return family, host, int(port)


def fmt_addr(sockaddr):
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def errno_name(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno)) if isinstance(exc, OSError) and exc.errno else type(exc).__name__


def original_dst(conn):
    """SO_ORIGINAL_DST of an accepted TCP socket as 'host:port', or raises OSError."""
    if conn.family == socket.AF_INET6:
        # struct sockaddr_in6 { u16 family; be16 port; u32 flowinfo; in6_addr addr; u32 scope_id; }
        raw = conn.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
        port = struct.unpack("!H", raw[2:4])[0]
        return fmt_addr((socket.inet_ntop(socket.AF_INET6, raw[8:24]), port))
    # struct sockaddr_in { u16 family; be16 port; in_addr addr; u8 zero[8]; }
    raw = conn.getsockopt(socket.IPPROTO_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return fmt_addr((socket.inet_ntop(socket.AF_INET, raw[4:8]), port))


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Listener:
    def __init__(self, spec):
        self.name = spec["name"]
        self.proto = spec["proto"]
        family, host, port = parse_addr(spec["addr"])
        kind = socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(family, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if self.proto == "udp":
            if family == socket.AF_INET6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            else:
                self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.sock.bind((host, port))
        if self.proto == "tcp":
            self.sock.listen(128)
        self.sock.setblocking(False)

    def on_ready(self):
        if self.proto == "tcp":
            self.accept()
        else:
            self.datagram()

    def accept(self):
        try:
            conn, peer = self.sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        conn.settimeout(2)
        record = {
            "event": "accept",
            "listener": self.name,
            "proto": "tcp",
            "local": fmt_addr(conn.getsockname()),
            "peer": fmt_addr(peer),
            "originalDst": None,
            "originalDstError": None,
        }
        try:
            record["originalDst"] = original_dst(conn)
        except OSError as exc:
            record["originalDstError"] = errno_name(exc)
        emit(record)
        try:
            conn.sendall((json.dumps(record, separators=(",", ":")) + "\n").encode())
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()

    def datagram(self):
        try:
            data, ancdata, _flags, peer = self.sock.recvmsg(65535, socket.CMSG_SPACE(20))
        except BlockingIOError:
            return
        local_host = None
        reply_anc = []
        for level, ctype, cdata in ancdata:
            if level == socket.IPPROTO_IP and ctype == IP_PKTINFO:
                # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
                local_host = socket.inet_ntop(socket.AF_INET, cdata[8:12])
                reply_anc = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, cdata[8:12], b"\0" * 4))]
            elif level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO:
                # struct in6_pktinfo { in6_addr addr; int ifindex; }
                local_host = socket.inet_ntop(socket.AF_INET6, cdata[0:16])
                reply_anc = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("=16si", cdata[0:16], 0))]
        bound = self.sock.getsockname()
        record = {
            "event": "datagram",
            "listener": self.name,
            "proto": "udp",
            "local": fmt_addr((local_host or bound[0], bound[1])),
            "peer": fmt_addr(peer),
            "payload": data.decode(errors="replace"),
        }
        emit(record)
        try:
            self.sock.sendmsg([(json.dumps(record, separators=(",", ":")) + "\n").encode()], reply_anc, 0, peer)
        except OSError as exc:
            emit({"event": "error", "listener": self.name, "errno": errno_name(exc)})


def listen(specs):
    listeners = []
    for spec in specs:
        try:
            listeners.append(Listener(spec))
        except OSError as exc:
            emit({"event": "error", "listener": spec.get("name"), "addr": spec.get("addr"), "errno": errno_name(exc)})
            return 1
    selector = selectors.DefaultSelector()
    for listener in listeners:
        selector.register(listener.sock, selectors.EVENT_READ, listener)
    emit({"event": "ready", "listeners": [s["name"] for s in specs]})
    while True:
        for key, _ in selector.select():
            key.data.on_ready()


def connect_one(spec):
    proto = spec.get("proto", "tcp")
    family, host, port = parse_addr(spec["to"])
    timeout = float(spec.get("timeout", 3 if proto == "tcp" else 1.5))
    sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    result = {"proto": proto, "to": spec["to"]}
    try:
        sock.settimeout(timeout)
        if spec.get("bind"):
            _f, bhost, bport = parse_addr(spec["bind"], default_port=0)
            sock.bind((bhost, bport))
        if proto == "tcp":
            sock.connect((host, port))
            result.update(result="connected", local=fmt_addr(sock.getsockname()), peer=fmt_addr(sock.getpeername()))
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            text = b"".join(chunks).decode(errors="replace").strip()
            result["reply"] = json.loads(text) if text else None
        else:
            sock.sendto(spec.get("payload", "probe").encode(), (host, port))
            result["local"] = fmt_addr(sock.getsockname())
            data, frm = sock.recvfrom(65535)
            result.update(result="replied", replyFrom=fmt_addr(frm), reply=json.loads(data.decode()))
    except ConnectionRefusedError:
        result["result"] = "refused"
    except socket.timeout:
        result["result"] = "timeout"
    except OSError as exc:
        result.update(result="error", errno=errno_name(exc))
    except ValueError as exc:  # an unparsable reply
        result.update(result="error", errno="EBADMSG", detail=str(exc))
    finally:
        sock.close()
    return result


def http_get(url, timeout):
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    try:
        conn.request("GET", parsed.path or "/")
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return {"result": "ok", "status": response.status, "body": body}
    except OSError as exc:
        return {"result": "error", "error": errno_name(exc)}
    finally:
        conn.close()


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    command, args = argv[1], argv[2:]
    if command == "listen":
        return listen([json.loads(a) for a in args])
    if command == "connect":
        for spec in (json.loads(a) for a in args):
            emit(connect_one(spec))
        return 0
    if command == "http-get":
        emit(http_get(args[0], float(args[1]) if len(args) > 1 else 5))
        return 0
    sys.stderr.write(f"unknown command {command!r}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
