"""What an offered action carries: its variant (an experiment's arm) and its content for the
channel it is delivered on.

A customer offered an action with `variants` gets one of them, drawn by weight from a stable
hash of the customer, journey and action: the same variant every time (exclusive), independent
of the holdout draw (a held-out customer has no variant: they are the control of every arm).
The content is the action's `content`, then its `content_by_channel` entry for the delivery
channel, then the variant's own, each merged over the one before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from engine.rules.model import Action


def variant_of(journey: str, action: Action, customer_id: str) -> str:
    """The variant of `action` this customer gets; "" when the action has none."""
    if not action.variants:
        return ""
    key = f"{journey}/{action.id}/{customer_id}".encode()
    draw = int.from_bytes(hashlib.blake2b(key, digest_size=8, person=b"variant").digest(), "big")
    point = draw / 2**64 * sum(v.weight for v in action.variants)
    for variant in action.variants:
        point -= variant.weight
        if point < 0:
            return variant.id
    return action.variants[-1].id  # float rounding at the very top


def channel_key(action: Action, channel: str) -> str:
    """The `content_by_channel` entry `channel` selects ("" for none), for this action or any
    of its variants."""
    keyed = set(action.content_by_channel)
    for variant in action.variants:
        keyed |= set(variant.content_by_channel)
    return channel if channel in keyed else ""


def content_for(action: Action, variant: str, channel: str) -> Mapping[str, Any]:
    """The content delivered for `variant` ("" for none) on `channel`."""
    content = {**action.content, **action.content_by_channel.get(channel, {})}
    for arm in action.variants:
        if arm.id == variant:
            content |= {**arm.content, **arm.content_by_channel.get(channel, {})}
    return content


def content_keys(action: Action) -> list[tuple[str, str]]:
    """Every (variant, channel key) an offer of `action` can carry, for tables built once."""
    channels = {""} | set(action.content_by_channel)
    for variant in action.variants:
        channels |= set(variant.content_by_channel)
    variants = [v.id for v in action.variants] or [""]
    return [(variant, channel) for variant in variants for channel in sorted(channels)]
