"""GetRuleset names the ruleset in force, the same one every decision names."""

from __future__ import annotations

import hashlib

import pytest

from journeyman.v1 import journeyman_pb2 as pb
from tests.conftest import Service
from tests.rulesets import RULES_DIR

pytestmark = pytest.mark.service


async def test_get_ruleset_names_the_version_files_and_load_time(service: Service) -> None:
    ruleset = await service.stub.GetRuleset(pb.GetRulesetRequest())
    event = pb.Event(event_id="r1", customer_id="rita", type="page_view")
    decision = (await service.stub.Decide(pb.DecideRequest(event=event))).decision
    assert ruleset.version == decision.ruleset_version
    (file,) = ruleset.files
    text = (RULES_DIR / "retail.yaml").read_bytes()
    assert (file.journey, file.sha256) == ("retail", hashlib.sha256(text).hexdigest())
    assert ruleset.loaded_at_ms > 0 and ruleset.reloads == 0
