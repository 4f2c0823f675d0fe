"""The public API: proto/ lints clean, the committed code matches it, messages round-trip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from journeyman.v1 import journeyman_pb2, journeyman_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOGEN = REPO_ROOT / "scripts" / "protogen.py"
GENERATED_PACKAGE = "journeyman"


def generated_files(root: Path) -> dict[str, bytes]:
    """Map each file of the generated package under `root` (by relative path) to its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted((root / GENERATED_PACKAGE).rglob("*"))
        if path.is_file() and path.suffix in {".py", ".pyi"}
    }


def committed_grpc_tools_version() -> str:
    """The grpcio-tools version that generated the committed gRPC module."""
    grpc_module = REPO_ROOT / GENERATED_PACKAGE / "v1" / "journeyman_pb2_grpc.py"
    for line in grpc_module.read_text(encoding="utf-8").splitlines():
        if line.startswith("GRPC_GENERATED_VERSION = "):
            return line.split("=", 1)[1].strip().strip("'\"")
    return "unknown"


def find_buf() -> str | None:
    """The buf binary installed beside this Python (buf-bin), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "buf"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("buf")


def test_committed_generated_code_matches_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(PROTOGEN), "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    fresh = generated_files(tmp_path)
    committed = generated_files(REPO_ROOT)

    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )
    hint = ""
    installed_version = metadata.version("grpcio-tools")
    if committed_grpc_tools_version() != installed_version:
        hint = (
            f" (the committed files come from grpcio-tools {committed_grpc_tools_version()},"
            f" this environment has {installed_version})"
        )
    assert not stale, (
        f"generated code differs from proto/ in {', '.join(stale)}{hint}: "
        "run `make proto` and commit the result"
    )


def test_buf_lint_passes() -> None:
    buf = find_buf()
    if buf is None:
        pytest.skip("buf not found beside sys.executable or on PATH; `pip install buf-bin`")
    result = subprocess.run(
        [buf, "lint"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"buf lint found problems:\n{result.stdout}{result.stderr}"


def test_decide_request_round_trips_every_value_kind() -> None:
    request = journeyman_pb2.DecideRequest(
        event=journeyman_pb2.Event(
            event_id="evt-1",
            customer_id="cust-1",
            type="add_to_cart",
            channel="web",
            touchpoint="product_page",
            timestamp_ms=1_700_000_000_000,
            properties={
                "sku": journeyman_pb2.Value(string_value="SKU-42"),
                "price": journeyman_pb2.Value(number_value=19.99),
                "gift": journeyman_pb2.Value(bool_value=True),
                "missing": journeyman_pb2.Value(),
            },
        ),
        explain=True,
        top_k=3,
    )

    decoded = journeyman_pb2.DecideRequest.FromString(request.SerializeToString())

    assert decoded == request
    properties = decoded.event.properties
    assert properties["sku"].WhichOneof("kind") == "string_value"
    assert properties["sku"].string_value == "SKU-42"
    assert properties["price"].WhichOneof("kind") == "number_value"
    assert properties["price"].number_value == 19.99
    assert properties["gift"].WhichOneof("kind") == "bool_value"
    assert properties["gift"].bool_value is True
    assert properties["missing"].WhichOneof("kind") is None


def test_grpc_module_uses_the_packaged_messages() -> None:
    # protoc writes `from journeyman.v1 import journeyman_pb2`: the package must be importable.
    assert vars(journeyman_pb2_grpc)["journeyman_dot_v1_dot_journeyman__pb2"] is journeyman_pb2
    service = journeyman_pb2.DESCRIPTOR.services_by_name["JourneyService"]
    servicer_methods = {
        name for name in vars(journeyman_pb2_grpc.JourneyServiceServicer) if name[0].isupper()
    }
    assert servicer_methods == {method.name for method in service.methods}
