"""Which routes want which changes of which alarms, and the mail an operator reads."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import msgspec
import pytest

from hongshan.alarms.model import Change, Note, Originator, raised, transition
from hongshan.alarms.routes import RouteSpec, wants
from hongshan.services.alarms.notify import body, subject

T0 = 1_800_000_000_000  # 2027-01-15 08:00:00 UTC
OXIMETER = raised(
    product_key="clinic-1",
    device_name="oximeter-7",
    type="SpO2 low",
    severity="critical",
    originator=Originator(kind="rule", id="3"),
    details={"spo2": 86},
    escalation=None,
    now=T0,
)


@pytest.mark.parametrize(
    ("route", "change", "wanted"),
    [
        (RouteSpec(name="r", kind="webhook", url="http://x"), "raised", True),
        (RouteSpec(name="r", kind="webhook", url="http://x"), "repeated", False),
        (RouteSpec(name="r", kind="webhook", url="http://x"), "reminder", True),
        (RouteSpec(name="r", kind="webhook", url="http://x", changes=["noted"]), "noted", True),
        (RouteSpec(name="r", kind="webhook", url="http://x", min_severity="critical"), "raised",
         True),
        (RouteSpec(name="r", kind="webhook", url="http://x", types=["Door open"]), "raised",
         False),
        (RouteSpec(name="r", kind="webhook", url="http://x", types=["SpO2 low"]), "raised", True),
    ],
)  # fmt: skip
def test_a_route_wants_its_changes_of_its_alarms(
    route: RouteSpec, change: Change, wanted: bool
) -> None:
    assert wants(route, OXIMETER, change) is wanted


def test_a_route_wants_nothing_below_its_severity() -> None:
    route = RouteSpec(name="r", kind="email", to=["a@b.example"], min_severity="major")
    assert not wants(route, msgspec.structs.replace(OXIMETER, severity="minor"), "raised")


def test_the_mail_says_what_happened_in_the_towns_time() -> None:
    assert subject(OXIMETER, "raised") == "[CRITICAL] SpO2 low on clinic-1/oximeter-7"
    acked = transition(OXIMETER, "acknowledge", by="ana", now=T0 + 60_000)
    noted = msgspec.structs.replace(acked, notes=[Note(at=T0 + 90_000, by="ana", text="going")])
    assert subject(noted, "acknowledged").endswith("oximeter-7 (acknowledged)")
    text = body(noted, "acknowledged", ZoneInfo("Asia/Shanghai"))
    assert text.startswith("SpO2 low on clinic-1/oximeter-7: acknowledged\n")
    assert "First raised:  2027-01-15 16:00:00 CST" in text
    assert "Acknowledged:  2027-01-15 16:01:00 CST by ana" in text
    assert "Raised by:     rule 3" in text and '"spo2": 86' in text
    assert "  2027-01-15 16:01:30 CST ana: going" in text
