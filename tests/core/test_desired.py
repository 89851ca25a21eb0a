"""Desired property values: versions, reads and deletes as pure functions."""

from __future__ import annotations

import pytest

from hongshan.twin.desired import DesiredValue, VersionConflict, delete, read, set_values


def test_set_read_and_delete_with_versions() -> None:
    desired = set_values({}, {"Brightness": 40, "WorkMode": 2}, {}, now=1)
    assert desired == {"Brightness": DesiredValue(40, 1, 1), "WorkMode": DesiredValue(2, 1, 1)}
    desired = set_values(desired, {"Brightness": 60}, {"Brightness": 1}, now=2)
    assert desired["Brightness"] == DesiredValue(60, 2, 2)
    with pytest.raises(VersionConflict):
        set_values(desired, {"Brightness": 70}, {"Brightness": 1}, now=3)  # read version 1
    assert read(desired, ["Brightness", "Nope"]) == {"Brightness": {"value": 60, "version": 2}}
    assert read(desired, []) == {
        "Brightness": {"value": 60, "version": 2},
        "WorkMode": {"value": 2, "version": 1},
    }
    # the device applied version 1 of Brightness: version 2 was set since, and is kept
    desired = delete(desired, {"Brightness": {"version": 1}, "WorkMode": {"version": 1}})
    assert list(desired) == ["Brightness"]
    assert delete(desired, {"Brightness": {}}) == {}
