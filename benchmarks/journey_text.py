"""Journey files edited as text, to measure a ruleset against itself without one feature: the
benchmarks keep every other line as written, comments and order included."""

from __future__ import annotations


def without_block(text: str, key: str) -> str:
    """`text`, a journey file, with its top-level `<key>:` block taken out (the comment lines
    right above it too); ValueError when it has none."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
    except StopIteration:
        raise ValueError(f"the journey has no `{key}:` to take out") from None
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", "\n", "#")),
        len(lines),
    )
    while end - 1 > start and lines[end - 1].startswith("#"):
        end -= 1  # a comment at the margin introduces the next key
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return "".join(lines[:start] + lines[end:])
