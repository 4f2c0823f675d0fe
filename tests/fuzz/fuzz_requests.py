"""atheris target: any bytes as a DecideRequest are parsed and validated into an event or an
EventInvalid naming fields; nothing else escapes.

    .venv/bin/python tests/fuzz/fuzz_requests.py -max_total_time=60
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from google.protobuf.message import DecodeError

    from journeyman.v1 import journeyman_pb2 as pb
    from server.core.config import Settings
    from server.protocol.convert import decide_input
    from server.protocol.errors import EventInvalid

SETTINGS = Settings()
NOW_MS = 1_795_000_000_000


def one_input(data: bytes) -> None:
    try:
        request = pb.DecideRequest.FromString(data)
    except DecodeError:
        return  # not a message at all: grpc refuses it before our code runs
    try:
        decide_input(request, NOW_MS, SETTINGS)
    except EventInvalid as error:
        assert error.violations and all(v.field and v.description for v in error.violations)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
