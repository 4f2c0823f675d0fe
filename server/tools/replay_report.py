"""The report of `journeyman replay`: its figures as data (`report_data`, what `--json` prints),
as a terminal table, as an HTML page, and the `--fail-if` guards that turn it into an exit status.

A guard reads `<kind>:<name> changes by more than <N>%`: the count under the new rules differs
from the count under the baseline by more than N % of the baseline's (any change of a count the
baseline has at 0). Kinds: `stage` (customers whose final stage it is), `transition` (times it
fired), `action` (times offered), `held_out` (times held out), `goal` (conversions). A name is
`name` (summed over the journeys that have it) or `journey/name`. Also `customers changing stage
more than <N>%` and `customers changing offers more than <N>%`: the share of all customers whose
final stage (or offered actions, at some event) differ.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from engine.backtest import Explanation, Summary
from server.tools.replay import Replayed


class GuardError(ValueError):
    """A `--fail-if` that does not read as a guard: what was given and the forms it may take."""


@dataclass(frozen=True, slots=True)
class Guard:
    text: str
    kind: str
    name: str
    limit_pct: float

    _COUNT = re.compile(
        r"^(stage|transition|action|held_out|goal):(\S+) changes by more than "
        r"(\d+(?:\.\d+)?)\s*%$"
    )
    _SHARE = re.compile(r"^customers changing (stage|offers) more than (\d+(?:\.\d+)?)\s*%$")

    @classmethod
    def parse(cls, text: str) -> Guard:
        found = cls._COUNT.match(text.strip())
        if found:
            return cls(text, found[1], found[2], float(found[3]))
        share = cls._SHARE.match(text.strip())
        if share:
            return cls(text, f"customers_{share[1]}", "", float(share[2]))
        raise GuardError(
            f"--fail-if {text!r}: write `stage:approved changes by more than 2%` (kinds: stage, "
            "transition, action, held_out, goal) or `customers changing stage more than 5%`"
        )


def _counts(summary: Summary, kind: str) -> Counter[tuple[str, str]]:
    if kind == "goal":
        goals: Counter[tuple[str, str]] = Counter()
        for (journey, goal, _, _), count in summary.conversions.items():
            goals[(journey, goal)] += count
        return goals
    return {
        "stage": summary.final_stage,
        "transition": summary.transitions,
        "action": summary.offered,
        "held_out": summary.held_out,
    }[kind]


def _named(counts: Counter[tuple[str, str]], name: str) -> int:
    journey, _, short = name.rpartition("/")
    return sum(n for (j, key), n in counts.items() if key == short and journey in ("", j))


def change_pct(old: float, new: float) -> float:
    if old == 0:
        return 0.0 if new == 0 else float("inf")
    return abs(new - old) / old * 100


def check_guards(guards: Sequence[Guard], replayed: Replayed) -> list[dict[str, Any]]:
    """Each guard with the figures it compared and whether it tripped."""
    results = []
    old, new = replayed.old, replayed.new
    for guard in guards:
        if old is None:
            raise GuardError(f"--fail-if {guard.text!r} compares with the baseline: add --baseline")
        if guard.kind.startswith("customers_"):
            kind = guard.kind.removeprefix("customers_")
            changed = sum(
                1
                for d in replayed.divergences
                if (d.final_stage_differs if kind == "stage" else d.offers_differ)
            )
            before, after = float(new.customers), float(changed)
            value = 100.0 * changed / new.customers if new.customers else 0.0
        else:
            before = float(_named(_counts(old, guard.kind), guard.name))
            after = float(_named(_counts(new, guard.kind), guard.name))
            value = change_pct(before, after)
        results.append(
            {
                "guard": guard.text,
                "baseline": before,
                "new": after,
                "change_pct": value,
                "tripped": value > guard.limit_pct,
            }  # fmt: skip
        )
    return results


def _rows(
    old: Counter[Any] | None, new: Counter[Any], total_old: int, total_new: int
) -> list[dict[str, Any]]:
    keys = sorted(set(new) | set(old or {}))
    rows = []
    for key in keys:
        after = new.get(key, 0)
        before = old.get(key, 0) if old is not None else None
        rows.append(
            {"key": list(key), "old": before, "new": after,
             "old_share": before / total_old if before is not None and total_old else None,
             "new_share": after / total_new if total_new else None,
             "change_pct": change_pct(before, after) if before is not None else None}
        )  # fmt: skip
    return rows


def report_data(
    replayed: Replayed,
    explained: Mapping[str, Sequence[Explanation]],
    meta: Mapping[str, Any],
    guards: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Every figure of the report, as JSON-able data."""
    new, old = replayed.new, replayed.old

    def table(name: str, total: str) -> list[dict[str, Any]]:
        return _rows(
            getattr(old, name) if old is not None else None, getattr(new, name),
            getattr(old, total) if old is not None else 0, getattr(new, total),
        )  # fmt: skip

    divergences = replayed.divergences
    return {
        **meta,
        "events": new.events,
        "duplicates": new.duplicates,
        "customers": new.customers,
        "final_stage": table("final_stage", "customers"),
        "transitions": table("transitions", "events"),
        "offered": table("offered", "events"),
        "held_out": table("held_out", "events"),
        "offered_customers": table("offered_customers", "customers"),
        "friction_reached": table("friction_reached", "customers"),
        "conversions": table("conversions", "events"),
        "conversion_value": table("conversion_value", "events"),
        "changed": None
        if old is None
        else {
            "customers": len(divergences),
            "final_stage": sum(d.final_stage_differs for d in divergences),
            "offers": sum(d.offers_differ for d in divergences),
            "path_only": sum(not (d.offers_differ or d.final_stage_differs) for d in divergences),
        },
        "examples": {kind: [asdict(e) for e in items] for kind, items in explained.items()},
        "guards": list(guards),
    }


_SECTIONS = (
    ("final_stage", "Final stage (customers)", ("journey", "stage")),
    ("transitions", "Transitions fired", ("journey", "transition")),
    ("offered", "Actions offered (decisions; share of events)", ("journey", "action")),
    ("held_out", "Actions held out (decisions; share of events)", ("journey", "action")),
    ("offered_customers", "Customers offered each action", ("journey", "action")),
    ("friction_reached", "Highest friction level reached (customers)", ("journey", "level")),
    ("conversions", "Goal conversions", ("journey", "goal", "action", "arm")),
)


def _number(value: float | None, share: float | None = None) -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return f"{text} ({share:.1%})" if share is not None else text


def _change(row: Mapping[str, Any]) -> str:
    if row["old"] is None:
        return ""
    diff = row["new"] - row["old"]
    if diff == 0:
        return "="
    if row["change_pct"] == float("inf"):
        return f"{diff:+,.0f} (new)"
    return f"{diff:+,.0f} ({'+' if diff > 0 else '-'}{row['change_pct']:.1f}%)"


def table_lines(data: Mapping[str, Any]) -> list[str]:
    """The report for a terminal."""
    baseline = data.get("baseline_version")
    lines = [
        f"Replayed {data['events']:,} events of {data['customers']:,} customers "
        f"({data['duplicates']:,} repeated ids) in {data['seconds']:.2f} s",
        f"new rules: {data['rules_version']}"
        + (f"; baseline: {baseline}" if baseline else "; no baseline (--baseline OLD)"),
    ]
    for key, title, columns in _SECTIONS:
        rows = data[key]
        if not rows:
            continue
        lines += ["", title]
        share = key in ("final_stage", "offered", "held_out", "friction_reached")
        cells = [
            (*(str(k) for k in row["key"]),
             _number(row["old"], row["old_share"] if share else None) if baseline else "",
             _number(row["new"], row["new_share"] if share else None),
             _change(row))
            for row in rows
        ]  # fmt: skip
        head = (*columns, "baseline" if baseline else "", "new", "change" if baseline else "")
        lines += _aligned([head, *cells])
    lines += _changed_lines(data)
    for result in data["guards"]:
        verdict = "FAILED" if result["tripped"] else "ok"
        lines.append(f"guard {verdict}: {result['guard']} (measured {result['change_pct']:.2f}%)")
    return lines


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def _changed_lines(data: Mapping[str, Any]) -> list[str]:
    changed = data["changed"]
    if changed is None:
        return []
    lines = [
        "",
        f"Customers treated differently: {changed['customers']:,} of {data['customers']:,} "
        f"({changed['final_stage']:,} end in another stage; {changed['offers']:,} are offered "
        f"other actions at some event; {changed['path_only']:,} only pass through stages at "
        "other times)",
    ]
    titles = {
        "stage": "Final stage differs",
        "offers": "Offered actions differ",
        "path": "Same end, another path",
    }
    for kind, examples in data["examples"].items():
        for example in examples:
            when = datetime.fromtimestamp(example["at_ms"] / 1000, UTC).isoformat(
                timespec="seconds"
            )
            lines += [
                "",
                f"{titles[kind]}: customer {example['customer_id']}, first at their event "
                f"#{example['event_number']} ({example['event_type']}, id "
                f"{example['event_id']}, {when})",
                *(f"  baseline {line}" for line in example["old"]),
                *(f"  new      {line}" for line in example["new"]),
            ]
    return lines


def html_page(data: Mapping[str, Any], maps: Mapping[str, str]) -> str:
    """The report as one HTML page; `maps` links the designed journey maps (label -> file)."""
    text = "\n".join(table_lines(data))
    links = " · ".join(
        f'<a href="{html.escape(path)}">{html.escape(label)}</a>' for label, path in maps.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>journeyman replay</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}"
        "pre{font-size:13px;line-height:1.35}</style></head><body>"
        f"<h1>journeyman replay</h1><p>{links}</p><pre>{html.escape(text)}</pre></body></html>\n"
    )
