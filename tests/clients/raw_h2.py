#!/usr/bin/env python3
"""Raw HTTP/2 client (Python `h2`, no gRPC stack): replays exact header sets that real
gRPC clients send over a unix socket, one call per connection, and prints one JSON line
per case with everything a client can observe of the answer.

    raw_h2.py SOCKET [--path P] [--message-hex HEX] [--case NAME ...] [--repeat N]

SOCKET: the unix socket. --path: the gRPC method (default RuntimeService/Version).
--message-hex: the protobuf message (default empty), framed here. --case: run only
these cases (default: all; `--list` prints their names). --repeat: send each case N
times, one stream after the other on the same connection (the last answer is printed).

Output line: {"case", "reset" (RST_STREAM code or null), "goaway" (code or null),
"status" (:status), "grpc_status", "grpc_message", "trailers_only" (bool: the answer
was one HEADERS frame with END_STREAM), "data" (hex of the response body),
"content_type"}.
"""

import argparse
import json
import os
import socket
import sys

import h2.config
import h2.connection
import h2.events


def cases(sock_path, path):
    """Header sets as (name, list of (name, value)) in wire order. Values are bytes."""
    rel = sock_path.lstrip("/")
    enc = rel.replace("/", "%2F")
    base = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path.encode()),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]

    def with_authority(value):
        out = [h for h in base if h[0] != b":authority"]
        if value is not None:
            out.insert(3, (b":authority", value))
        return out

    def replace(name, value):
        out = [h for h in base if h[0] != name]
        if value is not None:
            # same position as the original
            idx = [h[0] for h in base].index(name)
            out.insert(idx, (name, value))
        return out

    def extra(*hs):
        return base + list(hs)

    return [
        # :authority as each client stack sends it over a unix socket
        ("authority-localhost", with_authority(b"localhost")),
        ("authority-percent-encoded", with_authority(enc.encode())),  # grpc C-core >= 1.57
        ("authority-raw-path", with_authority(sock_path.encode())),  # grpc-java, old grpc-go
        ("authority-percent-rooted", with_authority(("%2F" + enc).encode())),  # grpc-go path target
        ("authority-empty", with_authority(b"")),
        ("authority-absent", with_authority(None)),
        ("authority-unix-uri", with_authority(("unix:" + sock_path).encode())),
        ("authority-with-space", with_authority(b"local host")),
        # the other pseudo-headers
        ("scheme-absent", replace(b":scheme", None)),
        ("scheme-https", replace(b":scheme", b"https")),
        ("scheme-absent-authority-encoded", [h for h in with_authority(enc.encode()) if h[0] != b":scheme"]),
        ("pseudo-order-path-first", [base[2], base[0], base[1], base[3]] + base[4:]),
        # headers gRPC stacks differ in
        ("te-absent", replace(b"te", None)),
        ("user-agent-grpc-python", extra((b"user-agent", b"grpc-python/1.85.3 grpc-c/52.0.0 (linux; chttp2)"))),
        ("user-agent-node", extra((b"user-agent", b"grpc-node-js/1.14.7"))),
        ("grpc-timeout-seconds", extra((b"grpc-timeout", b"10S"))),
        ("grpc-timeout-millis", extra((b"grpc-timeout", b"99999m"))),
        ("grpc-accept-encoding", extra((b"grpc-accept-encoding", b"identity, deflate, gzip"))),
        ("grpc-encoding-identity", extra((b"grpc-encoding", b"identity"))),
        ("accept-encoding", extra((b"accept-encoding", b"identity, gzip"))),
        ("content-type-proto", replace(b"content-type", b"application/grpc+proto")),
        ("metadata-binary", extra((b"x-trace-bin", b"AAECAw"))),
        ("metadata-empty-value", extra((b"x-empty", b""))),
        ("metadata-dots-underscores", extra((b"x.odd_name-1", b"v"))),
        ("metadata-many", base + [(("x-m%03d" % i).encode(), b"v" * 20) for i in range(100)]),
        ("metadata-duplicate", extra((b"x-dup", b"1"), (b"x-dup", b"2"))),
        ("grpc-previous-rpc-attempts", extra((b"grpc-previous-rpc-attempts", b"1"))),
        # what containerd itself refuses: the answer must still be containerd's
        ("grpc-timeout-malformed", extra((b"grpc-timeout", b"soon"))),
        ("te-gzip", replace(b"te", b"gzip")),
        ("connection-header", extra((b"connection", b"keep-alive"))),
        ("metadata-uppercase", extra((b"X-Upper", b"v"))),
        ("header-before-pseudo", [base[4]] + base[:4] + base[5:]),
        ("content-type-absent", replace(b"content-type", None)),
        ("content-type-json", replace(b"content-type", b"application/json")),
        ("method-get", replace(b":method", b"GET")),
        ("method-absent", replace(b":method", None)),
        ("path-absent", replace(b":path", None)),
        ("path-unknown-method", replace(b":path", b"/runtime.v1.ImageService/NoSuchCall")),
    ]


def frame_message(msg):
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def run_case(sock_path, headers, body, timeout, repeat=1):
    cfg = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=cfg)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    conn.initiate_connection()
    conn.increment_flow_control_window(16 << 20)
    for _ in range(repeat):
        out = one_stream(s, conn, headers, body)
        if out.get("goaway") is not None or out.get("error"):
            break
    s.close()
    return out


def one_stream(s, conn, headers, body):
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers, end_stream=False)
    conn.send_data(sid, body, end_stream=True)
    s.sendall(conn.data_to_send())
    out = {
        "reset": None,
        "goaway": None,
        "status": None,
        "grpc_status": None,
        "grpc_message": None,
        "trailers_only": False,
        "data": "",
        "content_type": None,
    }
    data = b""
    done = False
    while not done:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            out["error"] = "timeout"
            break
        if not chunk:
            out["error"] = "connection closed"
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                hs = dict(ev.headers)
                out["status"] = hs.get(b":status", b"").decode()
                ct = hs.get(b"content-type")
                out["content_type"] = ct.decode() if ct is not None else None
                if b"grpc-status" in hs:
                    out["grpc_status"] = int(hs[b"grpc-status"])
                    out["grpc_message"] = hs.get(b"grpc-message", b"").decode()
                    out["trailers_only"] = ev.stream_ended is not None
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.TrailersReceived) and ev.stream_id == sid:
                hs = dict(ev.headers)
                if b"grpc-status" in hs:
                    out["grpc_status"] = int(hs[b"grpc-status"])
                    out["grpc_message"] = hs.get(b"grpc-message", b"").decode()
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                done = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                out["reset"] = int(ev.error_code)
                done = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                out["goaway"] = int(ev.error_code)
                done = True
        pending = conn.data_to_send()
        if pending:
            s.sendall(pending)
    out["data"] = data.hex()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("--path", default="/runtime.v1.RuntimeService/Version")
    ap.add_argument("--message-hex", default="")
    ap.add_argument("--case", action="append")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    all_cases = cases(a.socket, a.path)
    if a.list:
        for name, _ in all_cases:
            print(name)
        return
    body = frame_message(bytes.fromhex(a.message_hex))
    for name, headers in all_cases:
        if a.case and name not in a.case:
            continue
        try:
            res = run_case(a.socket, headers, body, a.timeout, a.repeat)
        except OSError as e:
            res = {"error": "%s: %s" % (type(e).__name__, e)}
        res["case"] = name
        print(json.dumps(res, sort_keys=True))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
