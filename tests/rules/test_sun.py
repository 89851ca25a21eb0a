"""Sun triggers: their text, published sunrise and sunset times, and the days near the pole
when the sun does not set."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from hongshan.rules.cron import ScheduleError
from hongshan.rules.sun import Place, SunEvent, SunTrigger

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
OSLO = zoneinfo.ZoneInfo("Europe/Oslo")
SHANGHAI_PLACE = Place(31.23, 121.47)
BERLIN_PLACE = Place(52.52, 13.405)
TROMSO = Place(69.65, 18.96)  # above the Arctic circle (66.6 N)
SUNRISE, SUNSET = SunTrigger(SunEvent.SUNRISE), SunTrigger(SunEvent.SUNSET)


def wall(instant: int | None, zone: dt.tzinfo) -> dt.datetime:
    assert instant is not None
    return dt.datetime.fromtimestamp(instant / 1000, zone)


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "event", "offset"),
    [
        ("sunrise", SunEvent.SUNRISE, 0),
        ("SUNSET", SunEvent.SUNSET, 0),
        ("sunset+30m", SunEvent.SUNSET, 30 * 60_000),
        ("sunset -15min", SunEvent.SUNSET, -15 * 60_000),
        ("dusk-1h", SunEvent.DUSK, -3_600_000),
        ("dawn + 1h30m", SunEvent.DAWN, 90 * 60_000),
        ("sunrise+90s", SunEvent.SUNRISE, 90_000),
        ("sunrise-12h", SunEvent.SUNRISE, -12 * 3_600_000),
    ],
)
def test_parse(text: str, event: SunEvent, offset: int) -> None:
    assert SunTrigger.parse(text) == SunTrigger(event, offset)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("noon", "event", "'noon' is none of sunrise"),
        ("", "event", "none of"),
        ("sunset+", "offset", "no duration"),
        ("sunset+15", "offset", "no duration"),
        ("sunset+15x", "offset", "no duration"),
        ("sunset+1h junk", "offset", "no duration"),
        ("sunset+13h", "offset", "more than 12 hours"),
        ("sunset*2", "event", "none of"),
    ],
)
def test_parse_errors(text: str, field: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        SunTrigger.parse(text)
    assert caught.value.field == field
    assert says in str(caught.value)


def test_a_place_out_of_range_is_refused() -> None:
    with pytest.raises(ScheduleError, match="latitude: 91"):
        Place(91, 0)
    with pytest.raises(ScheduleError, match="longitude: -181"):
        Place(0, -181)


def test_berlin_winter_solstice() -> None:
    # Stiftung Planetarium Berlin for the Tagesspiegel: on 2024-12-21 the sun rises at 8:14:38
    # and sets at 15:54:41 (averaged over the city), to astral's minute
    day = dt.date(2024, 12, 21)
    rise = wall(SUNRISE.on(day, BERLIN_PLACE, BERLIN), BERLIN)
    sets = wall(SUNSET.on(day, BERLIN_PLACE, BERLIN), BERLIN)
    assert abs(rise - dt.datetime(2024, 12, 21, 8, 14, 38, tzinfo=BERLIN)) < dt.timedelta(minutes=1)
    assert abs(sets - dt.datetime(2024, 12, 21, 15, 54, 41, tzinfo=BERLIN)) < dt.timedelta(
        minutes=1
    )


@pytest.mark.parametrize(
    ("month", "sunrise", "sunset"),
    [
        # whattime.city/shanghai/sun, "on the 1st of each month" (31.23 N, 121.47 E), rounded
        # to the minute, for a year it does not name: two minutes' tolerance
        (1, "06:53", "17:03"),
        (4, "05:44", "18:13"),
        (6, "04:52", "18:54"),
        (7, "04:54", "19:03"),
        (10, "05:48", "17:41"),
        (12, "06:36", "16:52"),
    ],
)
def test_shanghai_table(month: int, sunrise: str, sunset: str) -> None:
    day = dt.date(2026, month, 1)
    for trigger, published in ((SUNRISE, sunrise), (SUNSET, sunset)):
        hour, minute = map(int, published.split(":"))
        expected = dt.datetime(2026, month, 1, hour, minute, tzinfo=SHANGHAI)
        found = wall(trigger.on(day, SHANGHAI_PLACE, SHANGHAI), SHANGHAI)
        assert abs(found - expected) <= dt.timedelta(minutes=2), (trigger, found)


def test_offset_moves_the_fire() -> None:
    day = dt.date(2026, 12, 7)
    sunset = SUNSET.on(day, SHANGHAI_PLACE, SHANGHAI)
    assert sunset is not None
    earlier = SunTrigger.parse("sunset-15min").on(day, SHANGHAI_PLACE, SHANGHAI)
    assert earlier == sunset - 15 * 60_000
    dusk = SunTrigger.parse("dusk").on(day, SHANGHAI_PLACE, SHANGHAI)
    assert dusk is not None
    assert sunset + 20 * 60_000 < dusk < sunset + 30 * 60_000  # civil twilight, at 31 N


def test_next_after_is_strictly_after() -> None:
    day = dt.date(2026, 12, 7)
    sunset = SUNSET.on(day, SHANGHAI_PLACE, SHANGHAI)
    assert sunset is not None
    assert SUNSET.next_after(sunset - 1, SHANGHAI_PLACE, SHANGHAI) == sunset
    after = SUNSET.next_after(sunset, SHANGHAI_PLACE, SHANGHAI)
    assert after == SUNSET.on(dt.date(2026, 12, 8), SHANGHAI_PLACE, SHANGHAI)
    # an offset that moves the fire to the day before: sunrise-12h fires the evening before
    early = SunTrigger.parse("sunrise-12h")
    evening = ms(dt.datetime(2026, 12, 7, 18, 0, tzinfo=SHANGHAI))
    fire = early.next_after(evening, SHANGHAI_PLACE, SHANGHAI)
    assert fire == early.on(dt.date(2026, 12, 8), SHANGHAI_PLACE, SHANGHAI)
    assert wall(fire, SHANGHAI).date() == dt.date(2026, 12, 7)


def test_fires_between_one_a_day() -> None:
    start = ms(dt.datetime(2026, 12, 1, tzinfo=SHANGHAI))
    end = ms(dt.datetime(2026, 12, 8, tzinfo=SHANGHAI))
    fires = list(SUNRISE.fires_between(start, end, SHANGHAI_PLACE, SHANGHAI))
    assert [wall(f, SHANGHAI).day for f in fires] == [1, 2, 3, 4, 5, 6, 7]
    chain = []
    t = start - 1
    while (t := SUNRISE.next_after(t, SHANGHAI_PLACE, SHANGHAI) or end) < end:
        chain.append(t)
    assert chain == fires


def test_midnight_sun_above_the_arctic_circle() -> None:
    # Tromso in June: the sun neither sets nor rises; the trigger waits for late July
    midsummer = dt.date(2026, 6, 21)
    assert SUNSET.on(midsummer, TROMSO, OSLO) is None
    assert SUNRISE.on(midsummer, TROMSO, OSLO) is None
    fire = SUNSET.next_after(ms(dt.datetime(2026, 6, 21, tzinfo=OSLO)), TROMSO, OSLO)
    first = wall(fire, OSLO)
    assert dt.date(2026, 7, 20) <= first.date() <= dt.date(2026, 7, 31)
    assert SUNSET.on(first.date() - dt.timedelta(days=1), TROMSO, OSLO) is None
    june = list(
        SUNSET.fires_between(
            ms(dt.datetime(2026, 6, 1, tzinfo=OSLO)),
            ms(dt.datetime(2026, 7, 1, tzinfo=OSLO)),
            TROMSO,
            OSLO,
        )
    )
    assert june == []


def test_no_civil_dawn_in_trondheim_at_midsummer() -> None:
    # at 63.4 N in June the sun sets but never sinks 6 degrees below the horizon
    trondheim = Place(63.43, 10.39)
    midsummer = dt.date(2026, 6, 21)
    assert SUNRISE.on(midsummer, trondheim, OSLO) is not None
    assert SunTrigger(SunEvent.DAWN).on(midsummer, trondheim, OSLO) is None
    assert SunTrigger(SunEvent.DUSK).on(midsummer, trondheim, OSLO) is None
