"""A turn's hook calls laid out on a time axis: one bar per call, in call order.

The layout is computed here, once, for both the console's page (the API
sends it with the turn) and the HTML export, so the two never draw a turn
differently. Bars are in the order the calls started (a call made inside
another, such as ``session_compress`` inside a plugin's ``turn_inbound``,
comes after it); each bar's ``offset`` and ``width`` are percentages of the
axis, which runs from the first call's start to the last call's end. Calls
stored before their start times were kept (``started`` is ``None``) are laid
end to end in the stored order instead.

A tool step is what happens after the model asked for tools: the calls of
``tool_*`` points (``tool_authorize``, ``tool_call``), then the model asked
again with the results. Its calls are nested one level under a heading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The narrowest bar drawn, in percent of the axis, so that a call of a few microseconds shows.
MIN_WIDTH = 0.4
#: Outcomes drawn as a failure of the call, and as a refusal.
FAILED = frozenset({"error", "timeout", "dropped"})
REFUSED = frozenset({"deny"})
#: The model's point: tool steps happen between its calls.
MODEL_POINT = "turn_reply"


def layout(trace: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The bars of ``trace`` (documents of :func:`~turnkit.console.documents.trace_json`), and the
    axis' length in seconds."""
    calls = sorted(zip(_starts(trace), trace, strict=True), key=lambda pair: pair[0])
    origin = min((start for start, _ in calls), default=0.0)
    span = max(max((start + call["duration"] for start, call in calls), default=0.0) - origin, 1e-9)
    rows: list[dict[str, Any]] = []
    asked = steps = 0
    in_step = False
    for start, call in calls:
        point = call["point"]
        nested = asked > 0 and (point.startswith("tool_") or point == MODEL_POINT)
        if nested and not in_step:
            steps += 1
            in_step = True
            rows.append({"heading": f"tool step {steps}", "depth": 0})
        offset = min(100 * (start - origin) / span, 100 - MIN_WIDTH)
        width = min(max(100 * call["duration"] / span, MIN_WIDTH), 100 - offset)
        rows.append(
            {
                **call,
                "depth": 1 if nested else 0,
                "offset": round(offset, 3),
                "width": round(width, 3),
                "at": start - origin,
                "state": _state(call["outcome"]),
            }
        )
        if point == MODEL_POINT:
            asked += 1
            in_step = False
    return {"span": span, "rows": rows}


def _starts(trace: Sequence[Mapping[str, Any]]) -> list[float]:
    """Each call's start, or, where it was not kept, the previous call's end."""
    starts: list[float] = []
    end = 0.0
    for call in trace:
        start = call.get("started")
        if start is None:
            start = end
        starts.append(start)
        end = max(end, start + call["duration"])
    return starts


def _state(outcome: str) -> str:
    """``failed``, ``refused`` or ``ok``: how the bar is coloured."""
    if outcome in FAILED:
        return "failed"
    return "refused" if outcome in REFUSED else "ok"
