"""`journeyman map` writes one self-contained page per journey file: the designed journey (every
stage and every transition edge) in its data, the vendored layout inlined, nothing fetched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from server.tools.cli import main
from tests.rulesets import RULES_DIR

CONFIG = re.compile(r'<script id="journeyman-map" type="application/json">(.*?)</script>', re.S)


@pytest.mark.parametrize("journey", ["retail", "loan_application"])
def test_the_designed_map_of_each_example(journey: str, tmp_path: Path) -> None:
    output = tmp_path / "map.html"
    assert main(["map", str(RULES_DIR / f"{journey}.yaml"), "-o", str(output)]) == 0
    page = output.read_text(encoding="utf-8")
    found = CONFIG.search(page)
    assert found is not None
    data = json.loads(found[1].replace("<\\/", "</"))["data"]
    assert data["journey"] == journey
    assert data["as_of_ms"] == "0"  # designed: no figures
    model = (RULES_DIR / f"{journey}.yaml").read_text(encoding="utf-8")
    for stage in data["stages"]:
        assert f"id: {stage['stage']}" in model
    assert {t["transition"] for t in data["transitions"]} <= set(re.findall(r"- id: (\w+)", model))
    assert "dagre" in page and "src=" not in page and "https://" not in page  # nothing fetched


def test_an_unknown_journey_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "map.html"
    assert (
        main(["map", str(RULES_DIR / "retail.yaml"), "--journey", "nope", "-o", str(output)]) == 2
    )
    assert "no journey 'nope'; loaded: retail" in capsys.readouterr().err
