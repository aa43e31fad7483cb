"""A turn's waterfall: bars in the order the calls started, on the turn's axis, tool steps nested."""

from __future__ import annotations

from typing import Any

from turnkit.console.waterfall import MIN_WIDTH, layout


def call(point: str, started: float | None, duration: float, outcome: str = "ok") -> dict[str, Any]:
    return {"point": point, "kind": "guard", "plugin": "p", "started": started, "duration": duration,
            "outcome": outcome, "error": None}  # fmt: skip


def test_bars_follow_the_start_times_and_fill_the_axis() -> None:
    trace = [
        call("turn_authorize", 100.0, 0.1),
        call("session_compress", 100.3, 0.1),  # inside turn_inbound, stored first: it ended first
        call("turn_inbound", 100.2, 0.3),
        call("turn_reply", 100.5, 0.5, "value"),
    ]
    drawn = layout(trace)
    assert drawn["span"] == 1.0
    assert [(r["point"], r["offset"], r["width"]) for r in drawn["rows"]] == [
        ("turn_authorize", 0.0, 10.0),
        ("turn_inbound", 20.0, 30.0),
        ("session_compress", 30.0, 10.0),
        ("turn_reply", 50.0, 50.0),
    ]


def test_tool_steps_are_nested_and_outcomes_coloured() -> None:
    trace = [
        call("turn_authorize", 0.0, 0.1),
        call("turn_reply", 0.1, 0.1),
        call("tool_authorize", 0.2, 0.1, "deny"),
        call("turn_reply", 0.3, 0.1),
        call("tool_authorize", 0.4, 0.1),
        call("turn_reply", 0.5, 0.1),
        call("turn_completed", 0.6, 0.4, "error"),
    ]
    rows = layout(trace)["rows"]
    assert [(r.get("heading") or r["point"], r["depth"]) for r in rows] == [
        ("turn_authorize", 0),
        ("turn_reply", 0),
        ("tool step 1", 0),
        ("tool_authorize", 1),
        ("turn_reply", 1),
        ("tool step 2", 0),
        ("tool_authorize", 1),
        ("turn_reply", 1),
        ("turn_completed", 0),
    ]
    assert [r["state"] for r in rows if "state" in r] == ["ok", "ok", "refused", "ok", "ok", "ok", "failed"]


def test_calls_without_start_times_are_laid_end_to_end_and_tiny_ones_still_show() -> None:
    rows = layout([call("a", None, 1.0), call("b", None, 0.0), call("c", None, 1.0)])["rows"]
    assert [(r["offset"], r["width"]) for r in rows] == [(0.0, 50.0), (50.0, MIN_WIDTH), (50.0, 50.0)]
    assert layout([]) == {"span": 1e-9, "rows": []}
