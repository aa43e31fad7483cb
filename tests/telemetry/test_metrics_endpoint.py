"""``/metrics`` on a served agent's HTTP server: behind its token, and parsed as Prometheus reads it."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from turnkit.testing_served import ServedAgent

TOKEN = "metrics-scraper-token"


def test_metrics_are_served_behind_the_token_and_count_the_turns(turnkit_served: ServedAgent) -> None:
    turnkit_served.env["METRICS_TEST_TOKEN"] = TOKEN
    turnkit_served.configure(
        telemetry={"metrics": True},
        service={"chat": {"channels": ["http"], "http": {"token_env": "METRICS_TEST_TOKEN"}}},
    )
    turnkit_served.start()
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for text in ["one", "two", "three"]:
        sent = turnkit_served.post("/api/chats/metrics/messages", json.dumps({"text": text}).encode(), auth)
        assert sent.status == 200, sent.text
    assert turnkit_served.request("GET", "/metrics").status == 401  # no token: no metrics
    scraped = turnkit_served.request("GET", "/metrics", headers=auth)
    assert scraped.status == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    completed = [turn for turn in turnkit_served.turns() if turn["status"] == "completed"]
    assert samples["turnkit_turns_total", (("status", "completed"),)] == len(completed) == 3
    assert samples["turnkit_active_leases", ()] == 1
    assert samples["turnkit_queued_turns", ()] == 0
    reply = (
        "turnkit_hook_calls_total",
        (("kind", "resolve"), ("outcome", "value"), ("plugin", "turnkit-defaults"), ("point", "turn_reply")),
    )
    assert samples[reply] == 3  # the built-in echo model answered each
    assert turnkit_served.request("POST", "/metrics", headers=auth).status == 405


def test_without_metrics_there_is_no_endpoint(turnkit_served: ServedAgent) -> None:
    turnkit_served.configure(service={"chat": {"channels": ["http"]}})
    turnkit_served.start()
    assert turnkit_served.request("GET", "/metrics").status == 404
