#!/usr/bin/env python3
"""CRI client on Python grpcio (grpc C-core) at its defaults. See SOURCES.md.

    grpcio_cri.py TARGET OPS_JSON      TARGET: unix:/path/to.sock
"""

import json
import os
import sys

import grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
protos, services = grpc.protos_and_services("v1.proto")


def call(stub_method, request):
    try:
        resp = stub_method(request, timeout=120)
        return "OK", "", json_format.MessageToDict(resp, preserving_proto_field_name=True)
    except grpc.RpcError as e:
        return e.code().name, e.details() or "", None


def main():
    target, ops = sys.argv[1], json.loads(sys.argv[2])
    with grpc.insecure_channel(target) as ch:
        images = services.ImageServiceStub(ch)
        runtime = services.RuntimeServiceStub(ch)
        for op in ops:
            kind = op["op"]
            spec = protos.ImageSpec(image=op.get("image", ""))
            if kind == "pull":
                code, details, resp = call(images.PullImage, protos.PullImageRequest(image=spec))
            elif kind == "status":
                code, details, resp = call(images.ImageStatus, protos.ImageStatusRequest(image=spec))
            elif kind == "list":
                code, details, resp = call(images.ListImages, protos.ListImagesRequest())
            elif kind == "remove":
                code, details, resp = call(images.RemoveImage, protos.RemoveImageRequest(image=spec))
            elif kind == "version":
                code, details, resp = call(runtime.Version, protos.VersionRequest(version="v1"))
            else:
                raise SystemExit("unknown op %r" % kind)
            print(json.dumps({"op": kind, "code": code, "details": details, "response": resp}, sort_keys=True))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
