"""The journey map page: one self-contained HTML page per journey (page.html, map.js and the
vendored dagre layout from this package, inlined), drawn in the browser from the figures of
`GetJourneyStats` as JSON. The service serves it live (polling the JSON); `journeyman map` writes
it to a file with the figures baked in, or with the designed journey alone.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from google.protobuf.json_format import MessageToDict

from journeyman.v1 import journeyman_pb2 as pb

REFRESH_S = 5
_ASSETS = files("server.analytics").joinpath("map")


def stats_json(response: pb.GetJourneyStatsResponse) -> dict[str, Any]:
    """The response as the page reads it: proto JSON with field names as in the .proto, zeros
    and empty lists written out (int64 values are strings, as proto JSON has them)."""
    return MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def map_page(
    *,
    data: dict[str, Any] | None = None,
    stats_url: str | None = None,
    journeys: Sequence[tuple[str, str]] = (),
    note: str = "",
    refresh_s: int = REFRESH_S,
) -> str:
    """The page: `data` drawn at once (a written map), and/or `stats_url` polled every
    `refresh_s` (the served map); `journeys` are (name, link) pairs for its navigation."""
    config = {"data": data, "statsUrl": stats_url, "refreshS": refresh_s, "note": note}
    nav = " ".join(
        f'<a href="{html.escape(link)}">{html.escape(name)}</a>' for name, link in journeys
    )
    page = _asset("page.html")
    for name, value in (
        ("{{nav}}", nav),
        ("{{config}}", _script_safe(json.dumps(config))),
        ("{{dagre}}", _script_safe(_asset("vendor/dagre.min.js"))),
        ("{{script}}", _script_safe(_asset("map.js"))),
    ):
        page = page.replace(name, value, 1)
    return page


def _asset(name: str) -> str:
    return _ASSETS.joinpath(name).read_text(encoding="utf-8")


def _script_safe(text: str) -> str:
    # Inside <script>, only "</" can end the element early; JSON and JS read "<\/" the same.
    return text.replace("</", "<\\/")
