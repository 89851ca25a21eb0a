"""The Grafana dashboard shipped in docs/ is a dashboard Grafana takes (its schema version,
a Prometheus data source chosen by a variable), and every metric it queries is one a real
server's ``/metrics`` has: renaming a family without the dashboard fails here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metric_scrapes import scrape
from thingsboard_device import rest

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:hongshan|process)_[a-z_]+)\b")
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def family_of(sample: str, families: set[str]) -> str | None:
    """The family a sample name belongs to (a counter's ``…_total``, a histogram's parts)."""
    if sample in families:
        return sample
    for suffix in SUFFIXES:
        if sample.endswith(suffix) and sample.removesuffix(suffix) in families:
            return sample.removesuffix(suffix)
    return None


def test_the_dashboard_is_one_grafana_takes() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_every_metric_it_queries_is_scraped(server: Any) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        for name in METRIC.findall(target["expr"])
    }
    queried |= set(METRIC.findall(json.dumps(dashboard["templating"])))
    assert len(queried) > 20
    with rest(server) as api:
        families, _ = scrape(api)
    missing = {name for name in queried if family_of(name, families) is None}
    assert not missing, f"the dashboard queries what no scrape has: {sorted(missing)}"
    # every family of the platform's own is drawn somewhere
    drawn = {family_of(name, families) for name in queried}
    ours = {family for family in families if family.startswith("hongshan_")}
    assert ours <= drawn, f"families with no panel: {sorted(ours - drawn)}"


def test_the_scrape_helper_is_not_fooled(server: Any) -> None:
    """(A name that is no family is reported, so the test above can fail.)"""
    with rest(server) as api:
        families, _ = scrape(api)
    assert family_of("hongshan_no_such_thing_total", families) is None
    assert family_of("hongshan_history_commit_seconds_bucket", families) is not None
