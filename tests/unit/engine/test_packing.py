"""PackedRules carries every CompiledRules field; the compiled unpacking gives them all back."""

from __future__ import annotations

import numpy as np

from engine.kernels.compiled import CompiledRules, PackedRules, _unpack_rules
from tests.rulesets import retail


def test_every_field_survives_packing_and_unpacking() -> None:
    journey = retail().journeys[0]
    unpacked = _unpack_rules(PackedRules(*journey.packed_arrays))
    assert len(unpacked) == len(CompiledRules._fields)
    for name, original, restored in zip(
        CompiledRules._fields, journey.rules, unpacked, strict=True
    ):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(original), err_msg=name)
        assert np.asarray(restored).dtype == np.asarray(original).dtype, name
