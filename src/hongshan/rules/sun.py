"""Sun triggers: sunrise, sunset, dawn or dusk at a place, with an offset.

A scene's trigger written ``sunset-15min`` fires a quarter of an hour before each sunset at the
town's place (its latitude and longitude), the town's days being those of its time zone::

    sunrise             when the sun's upper edge rises over the horizon (refraction counted)
    sunset+30m          half an hour after sunset
    dusk-1h             an hour before the end of civil twilight (sun 6 degrees below)
    dawn + 1h30m        an hour and a half after civil dawn

``SunTrigger.parse`` reads that text: the event (``sunrise``, ``sunset``, ``dawn``, ``dusk``, in
any case), then optionally ``+`` or ``-`` and a duration of hours ``h``, minutes ``m`` or
``min`` and seconds ``s`` (``1h30m``, ``15min``, ``90s``), at most 12 hours; anything else is a
``ScheduleError`` (HTTP 400) naming ``event`` or ``offset``. The times are astral's (NOAA's
equations), good to about a minute.

Near the poles an event may not happen on a day: in June above the Arctic circle the sun does
not set (nor rise), and from about 60 degrees north it does not sink 6 degrees below the
horizon, so there is no dawn or dusk. That day has no event (``on`` answers None) and
``next_after`` goes on to the next day that has one — at Tromsø, from the end of May to late
July — or answers None when no day of the next 400 has one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Iterator

from astral import Observer
from astral import sun as astral_sun

from hongshan.rules.cron import ScheduleError

_MAX_OFFSET_MS = 12 * 3_600_000
_DAYS_SEARCHED = 400  # (the polar night at 78 degrees north lasts four months)
_TEXT = re.compile(r"\s*([a-zA-Z]+)\s*(?:([+-])\s*(.*?))?\s*")
_PART = re.compile(r"(\d+)\s*(h|min|m|s)", re.IGNORECASE)
_UNIT_MS = {"h": 3_600_000, "min": 60_000, "m": 60_000, "s": 1000}


class SunEvent(enum.StrEnum):
    """What the sun does: rises, sets, or the civil twilight begins (dawn) or ends (dusk)."""

    SUNRISE = "sunrise"
    SUNSET = "sunset"
    DAWN = "dawn"
    DUSK = "dusk"


_ASTRAL: dict[SunEvent, Callable[..., dt.datetime]] = {
    SunEvent.SUNRISE: astral_sun.sunrise,
    SunEvent.SUNSET: astral_sun.sunset,
    SunEvent.DAWN: astral_sun.dawn,  # civil: 6 degrees below the horizon, astral's default
    SunEvent.DUSK: astral_sun.dusk,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Place:
    """Where the sun is watched from: degrees north (negative: south) and east (negative:
    west)."""

    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        if not -90 <= self.latitude <= 90:
            raise ScheduleError("latitude", f"{self.latitude} is out of -90..90")
        if not -180 <= self.longitude <= 180:
            raise ScheduleError("longitude", f"{self.longitude} is out of -180..180")


@dataclasses.dataclass(frozen=True, slots=True)
class SunTrigger:
    """An event of the sun and an offset from it (ms, negative: before). Build it with
    ``SunTrigger.parse``."""

    event: SunEvent
    offset: int = 0

    @classmethod
    def parse(cls, text: str) -> SunTrigger:
        """The trigger ``text`` says (``sunset-15min``), or ScheduleError naming the part."""
        match = _TEXT.fullmatch(text)
        name = match.group(1).lower() if match else text.strip()
        if match is None or name not in SunEvent.__members__.values():
            raise ScheduleError(
                "event", f"{name!r} is none of sunrise, sunset, dawn, dusk (then +/- a duration)"
            )
        sign, duration = match.group(2), match.group(3)
        if sign is None:
            return cls(SunEvent(name))
        parts = _PART.findall(duration)
        if not parts or "".join(f"{n}{u}" for n, u in parts) != re.sub(r"\s", "", duration):
            raise ScheduleError("offset", f"{duration!r} is no duration such as 30m, 1h30m, 90s")
        offset = sum(int(number) * _UNIT_MS[unit.lower()] for number, unit in parts)
        if offset > _MAX_OFFSET_MS:
            raise ScheduleError("offset", f"{duration!r} is more than 12 hours")
        return cls(SunEvent(name), -offset if sign == "-" else offset)

    def on(self, day: dt.date, place: Place, zone: dt.tzinfo) -> int | None:
        """The instant (ms) of the event on ``day`` (the town's day, in ``zone``) plus the
        offset; None when the sun does not do it that day."""
        try:
            moment = _ASTRAL[self.event](
                Observer(place.latitude, place.longitude), date=day, tzinfo=zone
            )
        except ValueError:  # astral: "Sun never reaches…", "Unable to find a … time"
            return None
        return round(moment.timestamp() * 1000) + self.offset

    def next_after(self, instant: int, place: Place, zone: dt.tzinfo) -> int | None:
        """The first fire strictly after ``instant`` (ms), skipping days without the event;
        None when none of the next 400 days has it."""
        day = _local_date(instant - self.offset, zone) - dt.timedelta(days=1)
        for _ in range(_DAYS_SEARCHED):
            fire = self.on(day, place, zone)
            if fire is not None and fire > instant:
                return fire
            day += dt.timedelta(days=1)
        return None

    def fires_between(self, start: int, end: int, place: Place, zone: dt.tzinfo) -> Iterator[int]:
        """Every fire in ``[start, end)`` (ms), in order: one a day at most."""
        day = _local_date(start - self.offset, zone) - dt.timedelta(days=1)
        last = _local_date(end - self.offset, zone) + dt.timedelta(days=1)
        while day <= last:
            fire = self.on(day, place, zone)
            if fire is not None and start <= fire < end:
                yield fire
            day += dt.timedelta(days=1)


def _local_date(instant: int, zone: dt.tzinfo) -> dt.date:
    return dt.datetime.fromtimestamp(instant / 1000, zone).date()
