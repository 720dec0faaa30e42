#!/usr/bin/env python3
"""ImageStatus latency with Python grpcio at its defaults: containerd directly and
through pullwarden, calls interleaved one by one so machine noise hits both alike.
Used by benches/cri_proxy.rs. See SOURCES.md.

    grpcio_bench.py DIRECT_SOCKET PROXY_SOCKET IMAGE WARMUP N

Prints one JSON object: {"direct": [ns, ...], "proxy": [ns, ...]} (N each, unsorted).
"""

import json
import os
import sys
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
protos, services = grpc.protos_and_services("v1.proto")


def main():
    direct_sock, proxy_sock, image, warmup, n = sys.argv[1:6]
    warmup, n = int(warmup), int(n)
    req = protos.ImageStatusRequest(image=protos.ImageSpec(image=image))
    with grpc.insecure_channel("unix:" + direct_sock) as dch, grpc.insecure_channel("unix:" + proxy_sock) as pch:
        direct = services.ImageServiceStub(dch).ImageStatus
        proxy = services.ImageServiceStub(pch).ImageStatus
        d, p = [], []
        clock = time.perf_counter_ns
        for i in range(warmup + n):
            t = clock()
            a = direct(req, timeout=30)
            td = clock() - t
            t = clock()
            b = proxy(req, timeout=30)
            tp = clock() - t
            if i == 0 and a != b:
                raise SystemExit("answers differ:\n%s\n%s" % (a, b))
            if i >= warmup:
                d.append(td)
                p.append(tp)
    print(json.dumps({"direct": d, "proxy": p}))


if __name__ == "__main__":
    main()
