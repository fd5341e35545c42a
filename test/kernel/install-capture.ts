// Tiny stand-ins used by the installer's kernel tests: Envoy's outbound listener and an app
// holding one connection open (python3 scripts run inside test pods).

/** Envoy's stand-in on 15001: replies to every line with the socket's SO_ORIGINAL_DST, read now. */
export const PROXY = `
import json, socket, struct, sys, threading
def original_dst(s):
    raw = s.getsockopt(socket.SOL_IP, 80, 16)
    port, = struct.unpack("!H", raw[2:4])
    return "%s:%d" % (socket.inet_ntoa(raw[4:8]), port)
def serve(c):
    f = c.makefile("rwb")
    for line in f:
        f.write((json.dumps({"line": line.decode().strip(), "originalDst": original_dst(c)}) + "\\n").encode())
        f.flush()
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 15001)); l.listen(16)
print("ready", flush=True)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/** The app: one connection; a line now, another when told on stdin (after the upgrade). */
export const APP = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = s.makefile("rwb")
for word in ("before", "after"):
    if word == "after":
        sys.stdin.readline()
    f.write((word + "\\n").encode()); f.flush()
    print(f.readline().decode().strip(), flush=True)
`;
