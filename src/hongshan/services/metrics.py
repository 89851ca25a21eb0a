"""The platform's figures in Prometheus' terms: a ``CollectorRegistry`` of its own (never the
process-wide default, so that two platforms in one process, as in the tests, never mix), whose
collectors read, at each scrape, the counters the parts keep anyway — the broker's ``Stats``,
each dialect's uplink counts and the bus's command results, the history's ``CommitTimes``, the
rules' ``Counters``, the alarms' and commands' tallies. Nothing is counted here and nothing is
done per message for the metrics' sake: a scrape costs a walk over those counters.

The families are listed in README's table (``docs/grafana-dashboard.json`` draws them); their
labels are bounded: dialects, outcomes, states, severities, and the rules that exist now (a
rule deleted takes its series with it; a rule changed starts its counters again, which
Prometheus reads as a counter reset).

The parts are named by the narrow protocols below, not imported: the broker and the dialects
sit where services may not reach (``pyproject.toml``'s contracts)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from hongshan.services.alarms.service import AlarmService
from hongshan.services.commands import DeviceCommands
from hongshan.services.rules.engine import RuleEngine
from hongshan.store.history.commit_times import BOUNDS, CommitTimes

Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


class BrokerStats(Protocol):
    """The broker's running counters (``broker.stats.Stats``)."""

    @property
    def connections_total(self) -> int: ...
    @property
    def messages_received(self) -> int: ...
    @property
    def messages_sent(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def refused_publish(self) -> int: ...
    @property
    def refused_connect(self) -> int: ...
    @property
    def refused_pending(self) -> int: ...
    @property
    def refused_subscribe(self) -> int: ...
    @property
    def refused_retained(self) -> int: ...
    @property
    def denied_publish(self) -> int: ...
    @property
    def denied_subscribe(self) -> int: ...
    @property
    def denied_delivery(self) -> int: ...
    @property
    def bytes_received(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def protocol_errors(self) -> int: ...


class BrokerGauges(Protocol):
    """What the broker holds now: sessions, connections, subscriptions, retained topics."""

    @property
    def stats(self) -> BrokerStats: ...
    @property
    def connections(self) -> Sized: ...
    @property
    def sessions(self) -> Sized: ...
    @property
    def subscriptions(self) -> Sized: ...
    @property
    def retained(self) -> Sized: ...


class DialectCounts(Protocol):
    """A dialect as the metrics see it (``dialects.port.Dialect``)."""

    name: str

    def uplink_counts(self) -> Mapping[str, int]: ...


class LiveFeedFigures(Protocol):
    """The WebSocket feed's figures (``LiveFeed``, built apart): the clients connected now,
    the messages sent to them and the frames they went in (a batch is one), the clients
    dropped as too slow to take them."""

    @property
    def clients(self) -> int: ...
    @property
    def messages_sent(self) -> int: ...
    @property
    def frames_sent(self) -> int: ...
    @property
    def dropped(self) -> int: ...


# (metric, help, the broker's counter): the broker's counters, each a Prometheus counter
BROKER_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("mqtt_connections_opened", "MQTT connections opened", "connections_total"),
    ("mqtt_messages_received", "PUBLISH packets received from clients", "messages_received"),
    ("mqtt_messages_sent", "PUBLISH packets sent to clients", "messages_sent"),
    ("mqtt_messages_dropped", "messages dropped (a queue full, an expiry)", "dropped"),
    ("mqtt_bytes_received", "bytes received from MQTT clients", "bytes_received"),
    ("mqtt_bytes_sent", "bytes sent to MQTT clients", "bytes_sent"),
    ("mqtt_protocol_errors", "connections closed for a protocol error", "protocol_errors"),
)
# the refusals, one family labelled by what was refused
BROKER_REFUSALS: tuple[tuple[str, str], ...] = (
    ("connect", "refused_connect"),
    ("pending_connection", "refused_pending"),
    ("publish", "refused_publish"),
    ("subscribe", "refused_subscribe"),
    ("retained", "refused_retained"),
    ("publish_denied", "denied_publish"),
    ("subscribe_denied", "denied_subscribe"),
    ("delivery_denied", "denied_delivery"),
)


# (the rules' counter, metric, help): totals over every rule run since the start
RULE_TOTALS: tuple[tuple[str, str, str], ...] = (
    ("matched", "rules_matched", "messages rules' FROMs matched, all rules"),
    ("fired", "rules_fired", "rules' fires, all rules"),
    ("limited", "rules_rate_limited", "fires rate limits held back, all rules"),
    ("failed", "rules_action_failures", "rules' actions that failed, all rules"),
)


@dataclass(frozen=True, kw_only=True)
class MeasuredParts:
    """What the metrics read. Without a ``live_feed`` (the WebSocket feed) its families are
    present with no samples."""

    broker: BrokerGauges
    dialects: Sequence[DialectCounts]
    command_results: Mapping[tuple[str, str], int]  # (protocol, outcome) -> calls carried
    commit_times: CommitTimes
    rules: RuleEngine
    alarms: AlarmService
    commands: DeviceCommands
    live_feed: LiveFeedFigures | None = None


def _name(metric: str) -> str:
    return f"hongshan_{metric}"


class PartsCollector(Collector):
    """Reads ``MeasuredParts`` at each scrape into metric families; keeps nothing itself."""

    def __init__(self, parts: MeasuredParts) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Family]:
        parts = self._parts
        return itertools.chain(
            self._broker(parts.broker),
            self._dialects(parts.dialects, parts.command_results),
            self._history(parts.commit_times),
            self._rules(parts.rules),
            self._alarms(parts.alarms),
            self._commands(parts.commands),
            self._live_feed(parts.live_feed),
        )

    @staticmethod
    def _broker(broker: BrokerGauges) -> Iterator[Family]:
        stats = broker.stats
        for metric, help_text, counter in BROKER_COUNTERS:
            yield CounterMetricFamily(_name(metric), help_text, value=getattr(stats, counter))
        refused = CounterMetricFamily(
            _name("mqtt_refused"), "what the broker refused or denied, by kind", labels=["what"]
        )
        for what, counter in BROKER_REFUSALS:
            refused.add_metric([what], getattr(stats, counter))
        yield refused
        connected = len(broker.connections)
        yield GaugeMetricFamily(_name("mqtt_clients_connected"), "MQTT clients", value=connected)
        yield GaugeMetricFamily(
            _name("mqtt_sessions"),
            "MQTT sessions kept, connected or not",
            value=len(broker.sessions),
        )
        yield GaugeMetricFamily(
            _name("mqtt_subscriptions"), "subscriptions", value=len(broker.subscriptions)
        )
        yield GaugeMetricFamily(
            _name("mqtt_retained_messages"), "retained topics", value=len(broker.retained)
        )

    @staticmethod
    def _dialects(
        dialects: Sequence[DialectCounts], results: Mapping[tuple[str, str], int]
    ) -> Iterator[Family]:
        uplinks = CounterMetricFamily(
            _name("dialect_uplinks"),
            "devices' messages each dialect took, by what became of them",
            labels=["dialect", "outcome"],
        )
        for dialect in dialects:
            for outcome, count in dialect.uplink_counts().items():
                uplinks.add_metric([dialect.name, outcome], count)
        yield uplinks
        replies = CounterMetricFamily(
            _name("dialect_replies"),
            "commands each dialect carried to a device, by their result",
            labels=["dialect", "outcome"],
        )
        for (protocol, outcome), count in sorted(results.items()):
            replies.add_metric([protocol, outcome], count)
        yield replies

    @staticmethod
    def _history(times: CommitTimes) -> Iterator[Family]:
        cumulative = list(itertools.accumulate(times.buckets))
        buckets = [(str(bound), cumulative[i]) for i, bound in enumerate(BOUNDS)]
        buckets.append(("+Inf", cumulative[-1]))
        yield HistogramMetricFamily(
            _name("history_commit_seconds"),
            "from a batch of the history's rows handed to its writer to its commit",
            buckets=buckets,
            sum_value=times.total,
        )
        yield CounterMetricFamily(
            _name("history_commit_failures"),
            "batches of the history's rows whose transaction failed",
            value=times.failed,
        )
        yield GaugeMetricFamily(
            _name("history_writes_in_flight"),
            "batches handed to the history's writer, not yet committed",
            value=times.in_flight,
        )
        yield GaugeMetricFamily(
            _name("history_lag_seconds"),
            "how long the oldest batch in flight has waited (0: caught up)",
            value=times.lag(),
        )

    @staticmethod
    def _rules(engine: RuleEngine) -> Iterator[Family]:
        running = engine.running_rules()
        yield GaugeMetricFamily(_name("rules_running"), "rules running", value=len(running))
        totals = engine.totals()
        for field, metric, help_text in RULE_TOTALS:
            yield CounterMetricFamily(_name(metric), help_text, value=totals[field])
        families = {
            "matched": CounterMetricFamily(
                _name("rule_matched"), "messages a rule's FROM matched", labels=["rule"]
            ),
            "fired": CounterMetricFamily(_name("rule_fired"), "a rule's fires", labels=["rule"]),
            "limited": CounterMetricFamily(
                _name("rule_rate_limited"), "fires its rate limit held back", labels=["rule"]
            ),
            "failed": CounterMetricFamily(
                _name("rule_action_failures"), "a rule's actions that failed", labels=["rule"]
            ),
        }
        for rule in running:
            counters = rule.counters
            for field, family in families.items():
                family.add_metric([rule.name], getattr(counters, field))
        yield from families.values()

    @staticmethod
    def _alarms(alarms: AlarmService) -> Iterator[Family]:
        changes = CounterMetricFamily(
            _name("alarm_changes"),
            "alarms' changes kept (raised, repeated, cleared, …), by severity",
            labels=["change", "severity"],
        )
        for (change, severity), count in sorted(alarms.changes.items()):
            changes.add_metric([change, severity], count)
        yield changes
        open_now = GaugeMetricFamily(
            _name("alarms_open"), "alarms open now, by severity", labels=["severity"]
        )
        for severity, count in sorted(alarms.open_by_severity().items()):
            open_now.add_metric([severity], count)
        yield open_now

    @staticmethod
    def _commands(commands: DeviceCommands) -> Iterator[Family]:
        moves = CounterMetricFamily(
            _name("commands"),
            "tracked commands moved into each state (sent, replied, timed_out, failed, …)",
            labels=["state"],
        )
        for state, count in sorted(commands.moves.items()):
            moves.add_metric([state.value], count)
        yield moves

    @staticmethod
    def _live_feed(feed: LiveFeedFigures | None) -> Iterator[Family]:
        clients = GaugeMetricFamily(_name("websocket_clients"), "WebSocket feed clients")
        sent = CounterMetricFamily(_name("websocket_messages_sent"), "messages sent to them")
        frames = CounterMetricFamily(
            _name("websocket_frames_sent"), "frames the messages went in (a batch is one)"
        )
        dropped = CounterMetricFamily(
            _name("websocket_clients_dropped"), "clients dropped for reading too slowly"
        )
        if feed is not None:
            clients.add_metric([], feed.clients)
            sent.add_metric([], feed.messages_sent)
            frames.add_metric([], feed.frames_sent)
            dropped.add_metric([], feed.dropped)
        yield from (clients, sent, frames, dropped)


def platform_registry(parts: MeasuredParts) -> CollectorRegistry:
    """A registry of the platform's own: its parts, and the process (CPU, memory, open files,
    the collector's generations, Python's version)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PartsCollector(parts))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
