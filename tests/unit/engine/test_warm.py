"""The warm-up compiles what a server's decisions run, before its first caller waits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# In a process of its own, so no other test has compiled the kernels first: the warm-up's
# signatures, then the ones a round's real events add (none, or the round compiles mid-call).
_CHECK = textwrap.dedent(
    """
    from engine.decide import decide
    from engine.event import Event
    from engine.kernels.many import _decide_many as kernel
    from engine.many import decide_many
    from engine.state import new_state
    from engine.warm import warm_up
    from server.rules.rulesource import load_ruleset

    ruleset = load_ruleset(["rules/retail.yaml"])
    warm_up(ruleset)
    warmed = set(kernel.signatures)
    assert warmed, "the warm-up did not run the batched kernel"
    events = [
        Event(f"e{n}", f"c{n % 7}", kind, channel="web", properties={"value": 12.5 * n})
        for n, kind in enumerate(["view_product", "add_to_cart", "checkout_started"] * 10)
    ]
    states = {"c1": decide(ruleset, new_state(ruleset), events[0], 0)[1]}
    decide_many(ruleset, events, [1_000 * n for n in range(len(events))], states, top_k=2)
    added = set(kernel.signatures) - warmed
    assert not added, f"real events compiled the batched kernel again: {added}"
    """
)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no kernels compiled")
def test_the_warm_up_compiles_the_batched_kernel_a_round_runs() -> None:
    checked = subprocess.run(
        [sys.executable, "-c", _CHECK], cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr[-3000:]
