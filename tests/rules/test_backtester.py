"""``Backtester`` on a history of each backend, without a server: a backtest bounded by values
or time stops and says where to go on from, and going on from there finds the rest."""

from __future__ import annotations

from history_places import HistoryPlace
from hongshan import messages as m
from hongshan.pipeline.history import HistoryStage
from hongshan.rules.definition import RuleSpec
from hongshan.services.rules.backtest import Backtester
from hongshan.services.rules.sources import PlatformStreams

T0 = 1_764_547_200_000
LAMP = m.DeviceRef("a1Lamp", "lamp-1")
STEP = 100_000  # ms between posts: the replay's windows grow over many chunks
END = T0 + 3_000 * STEP
RULE = RuleSpec(
    name="odd", sql='SELECT values.v AS v FROM "$things/a1Lamp/+/properties" WHERE values.v % 2 = 1'
)


async def test_a_bounded_backtest_stops_and_goes_on_from_where_it_stopped(
    place: HistoryPlace,
) -> None:
    """Stopped after 1,000 (values and messages: 500 posts), or at once by the clock."""
    history = await place.open()
    stage = HistoryStage(history)
    for i in range(3_000):
        post = m.PropertyValues(
            device=LAMP, received=T0 + i * STEP, ts=T0 + i * STEP, values={"v": i}
        )
        stage.on_uplink(post)
    await history.committed()
    try:
        backtester = Backtester(history, [PlatformStreams()])
        whole = await backtester.run(RULE, T0, END)
        assert whole.complete and whole.stopped_at is None
        assert (whole.uplinks, whole.values, whole.rule.fired) == (3_000, 3_000, 1_500)
        first = await backtester.run(RULE, T0, END, max_values=1_000)
        assert not first.complete and first.stopped_at is not None
        assert first.end == first.stopped_at and 500 <= first.values < 3_000
        rest = await backtester.run(RULE, first.stopped_at, END)
        assert rest.complete and first.values + rest.values == 3_000
        assert first.rule.fired + rest.rule.fired == 1_500
        timed = await backtester.run(RULE, T0, END, max_seconds=0)
        assert not timed.complete and timed.values < 3_000  # (one chunk, then the clock)
    finally:
        await history.close()
