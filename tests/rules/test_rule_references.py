"""What a rule reads, and rules checked against a real thing model (the streetlight's): a rule
naming a property the model lacks is refused with that name — by the neutral check, and by the
Alink dialect's source on Alibaba's property-post topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from hongshan.dialects.alink.rule_data import AlibabaRuleData, reads_property_posts
from hongshan.errors import HongshanError
from hongshan.rules.references import (
    RuleRefused,
    check_against,
    fields_under,
    latest_properties,
    references,
)
from hongshan.rules.sql import parse
from hongshan.things.tsl import ThingModel

STREETLIGHT = ThingModel.from_json(
    (Path(__file__).parent.parent / "things" / "data" / "streetlight.json").read_bytes()
)
POSTS = "FROM '/a1BenchLamp/+/thing/event/property/post'"
ALIBABA = AlibabaRuleData(lambda _pk: STREETLIGHT, lambda _pk, _dn: True)


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("/sys/a1HHrkm****/+/thing/event/property/post", True),
        ("/+/+/thing/event/property/post", True),
        ("+/thing/event/property/post", True),
        ("/sys/a1HHrkm****/+/thing/event/property/post_reply", False),
        ("/sys/a1HHrkm****/+/thing/event/LampFault/post", False),
        ("/sys/a1HHrkm****/#", False),
        ("/a1hRrzD****/+/user/update", False),
    ],
)
def test_which_rules_read_the_thing_model_data(topic_filter: str, expected: bool) -> None:
    assert reads_property_posts(parse(f"SELECT * FROM '{topic_filter}'")) is expected


def test_references_on_a_custom_topic_are_first_names() -> None:
    rule = parse(
        "SELECT temperature as t, deviceName() as d, location, coords.lat, items.x.y "
        "FROM '/a1hRrzD****/+/user/update' WHERE temperature > 38 and humidity < 40"
    )
    assert references(rule) == {"temperature", "location", "coords", "items", "humidity"}
    assert latest_properties(rule) == set()


def test_the_names_read_inside_a_field_and_by_latest() -> None:
    rule = parse(
        "SELECT *, deviceName() AS d, items.Brightness.value AS b, get(items, 'Voltage') AS v, "
        f"items['Energy'].time AS e, latest('WorkMode') AS m {POSTS} "
        "WHERE items.LightSwitch.value = 1 AND gmtCreate > 0 AND items[lower(deviceName())] = 1"
    )
    assert references(rule) == {"*", "items", "gmtCreate"}
    # (a computed key is read too, but names no property that could be checked)
    assert fields_under(rule, "items") == {"Brightness", "Voltage", "Energy", "LightSwitch"}
    assert latest_properties(rule) == {"WorkMode"}
    check_against(rule, STREETLIGHT, under=("items",))
    ALIBABA.check(rule, STREETLIGHT)


def test_the_benchmarks_rule_fits_the_model_that_has_its_property() -> None:
    rule = parse(f"SELECT * {POSTS} WHERE items.Voltage.value > 30")
    assert fields_under(rule, "items") == {"Voltage"}
    ALIBABA.check(rule, STREETLIGHT)


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (
            f"SELECT * {POSTS} WHERE items.Temperature.value > 30",
            "Temperature",
            "the rule reads property 'Temperature', which the product's thing model does not have",
        ),
        (
            f"SELECT items.Brightness.value AS b, items.Humidity.value AS h {POSTS}",
            "Humidity",
            "the rule reads property 'Humidity'",
        ),
        (
            "SELECT latest('Colour') AS c FROM '/a1hRrzD****/+/user/update'",
            "Colour",
            "the rule reads property 'Colour'",
        ),
        (
            f"SELECT * {POSTS} WHERE Brightness > 30",
            "Brightness",
            "the rule reads 'Brightness', which a property post has no field: a property is "
            "read as items.Brightness.value",
        ),
        (
            f"SELECT * {POSTS} WHERE colour = 'red'",
            "colour",
            "the rule reads 'colour', which a property post has no field nor property",
        ),
    ],
)
def test_a_rule_naming_what_the_model_lacks_is_refused_with_that_name(
    text: str, name: str, message: str
) -> None:
    with pytest.raises(RuleRefused) as caught:
        ALIBABA.check(parse(text), STREETLIGHT)
    assert caught.value.name == name
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, HongshanError) and caught.value.http_status == 400


def test_a_custom_topics_fields_are_not_the_models_business() -> None:
    rule = parse("SELECT * FROM '/a1hRrzD****/+/user/update' WHERE Temperature > 30")
    check_against(rule, STREETLIGHT)
    ALIBABA.check(rule, STREETLIGHT)
    ALIBABA.check(parse(f"SELECT * {POSTS}"), STREETLIGHT)
