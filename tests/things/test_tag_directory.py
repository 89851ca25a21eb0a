"""Devices' and groups' tags and groups' members in memory (``TagDirectory``): as it keeps
them, and as the registry keeps it in step on SQLite and PostgreSQL — a device's tags made,
changed and deleted with it, groups made, filled, emptied, tagged and deleted, a write that
fails changing nothing, and all of it loaded again at the next open."""

from __future__ import annotations

import pytest

from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError
from hongshan.things.tag_directory import TagDirectory
from registry_databases import RegistryDatabase

OX1, OX2 = ("pk", "ox-1"), ("pk", "ox-2")


def test_a_devices_tags_are_set_and_removed_by_key() -> None:
    tags = TagDirectory()
    assert tags.tags_of(*OX1) == {}
    tags.change_device(OX1, {"min": "93", "ward": "a"})
    before = tags.tags_of(*OX1)
    tags.change_device(OX1, {"min": "92"}, ["ward"])
    assert tags.tags_of(*OX1) == {"min": "92"}
    assert before == {"min": "93", "ward": "a"}  # (what a message read stays as it read it)
    tags.change_device(OX1, {"x": "1"}, ["x", "min"])  # (as the registry: set, then removed)
    assert tags.tags_of(*OX1) == {}


def test_a_devices_groups_and_their_tags_follow_each_change() -> None:
    tags = TagDirectory()
    for name in ("ward_b", "ward_a", "empty"):
        tags.put_group(name)
        tags.add_members(name, [OX1])
    tags.add_members("ward_b", [OX2])
    tags.change_group("ward_b", {"min": "91", "max": "99"})
    tags.change_group("ward_a", {"min": "92"})
    assert tags.groups_of(*OX1) == ["empty", "ward_a", "ward_b"]
    assert tags.group_tags_of(*OX1) == (
        ("ward_a", {"min": "92"}),
        ("ward_b", {"max": "99", "min": "91"}),
    )
    tags.change_group("ward_b", {"min": "90"}, ["max", "min"])  # (removed, then set)
    assert tags.group_tags_of(*OX2) == (("ward_b", {"min": "90"}),)
    assert tags.group_tags("ward_b") == {"min": "90"} and tags.group_tags("nope") is None
    tags.remove_members("ward_a", [OX1])
    assert tags.group_tags_of(*OX1) == (("ward_b", {"min": "90"}),)
    tags.drop_group("ward_b")
    assert tags.group_tags_of(*OX1) == () and tags.group_tags_of(*OX2) == ()
    assert tags.groups_of(*OX1) == ["empty"] and tags.groups_of(*OX2) == []
    tags.add_members("nope", [OX1])  # (a group there is none of: nothing)
    tags.drop_device(OX1)
    assert tags.groups_of(*OX1) == []
    tags.add_members("empty", [OX2])
    tags.drop_group("empty")
    assert tags.groups_of(*OX2) == []


async def test_the_registry_keeps_the_tags_in_step_and_loads_them_again(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    pk = (await registry.create_product("Oximeter")).product_key
    await registry.create_device(pk, "ox-1", tags={"min": "93", "ward": "a"})
    await registry.create_device(pk, "ox-2")
    await registry.create_device(pk, "ox-3", tags={"min": "80"})
    tags = registry.tags
    assert tags.tags_of(pk, "ox-1") == {"min": "93", "ward": "a"}
    await registry.update_device(pk, "ox-1", tags={"min": "94"}, remove_tags=["ward"])
    assert tags.tags_of(pk, "ox-1") == {"min": "94"}
    with pytest.raises(RegistryError, match="keys are 1 to 64"):
        await registry.update_device(pk, "ox-1", tags={"": "x"}, remove_tags=["min"])
    assert tags.tags_of(pk, "ox-1") == {"min": "94"}  # (nothing was written)
    groups = registry.groups
    for name in ("ward_b", "ward_a", "gone"):
        await groups.create(name)
        await groups.add(name, [(pk, "ox-1"), (pk, "ox-3")])
    await groups.add("ward_b", [(pk, "ox-2")])
    await groups.remove("ward_a", [(pk, "ox-3")])
    with pytest.raises(RegistryError):
        await groups.add("ward_a", [(pk, "ox-2"), (pk, "nobody")])
    assert tags.groups_of(pk, "ox-2") == ["ward_b"]  # (all or nothing)
    await groups.change_tags("ward_b", {"min": "91", "max": "99"}, [])
    await groups.change_tags("ward_a", {"min": "92"}, [])
    await groups.change_tags("gone", {"min": "1"}, [])
    await groups.change_tags("ward_b", {"min": "90"}, ["max"])
    with pytest.raises(RegistryError, match="no group nope"):
        await groups.change_tags("nope", {"a": "1"}, [])
    await groups.delete("gone")
    await registry.delete_device(pk, "ox-3")
    assert tags.tags_of(pk, "ox-3") == {} and tags.groups_of(pk, "ox-3") == []
    await groups.create("gone")  # (made again: no tags, no members)
    assert tags.group_tags("gone") == {}

    def seen(tags: TagDirectory) -> list[object]:
        return [
            [tags.tags_of(pk, name) for name in ("ox-1", "ox-2", "ox-3")],
            [tags.groups_of(pk, name) for name in ("ox-1", "ox-2", "ox-3")],
            [tags.group_tags_of(pk, name) for name in ("ox-1", "ox-2")],
            [tags.group_tags(name) for name in ("ward_a", "ward_b", "gone")],
        ]

    expected = [
        [{"min": "94"}, {}, {}],
        [["ward_a", "ward_b"], ["ward_b"], []],
        [(("ward_a", {"min": "92"}), ("ward_b", {"min": "90"})), (("ward_b", {"min": "90"}),)],
        [{"min": "92"}, {"min": "90"}, {}],
    ]
    assert seen(tags) == expected
    # what the database holds, the same
    assert (await groups.get("ward_b")).tags == {"min": "90"}
    assert await groups.members("ward_a") == [(pk, "ox-1")]
    again = await registry_db.open()
    try:
        assert seen(again.tags) == expected
    finally:
        await again.close()


def test_two_tenants_groups_of_one_name_are_two_groups() -> None:
    """A group is kept by tenant and name: each tenant's ``north`` has its own members and
    tags, and one deleted leaves the other."""
    tags = TagDirectory()
    theirs = ("pk-b", "ox-9")
    tags.put_group("north", "a")
    tags.put_group("north", "b")
    tags.add_members("north", [OX1], "a")
    tags.add_members("north", [theirs], "b")
    tags.change_group("north", {"max": "1"}, tenant="a")
    tags.change_group("north", {"max": "2"}, tenant="b")
    assert tags.tenants_of_group("north") == ["a", "b"]
    assert tags.group_tags_of(*OX1) == (("north", {"max": "1"}),)
    assert tags.group_tags_of(*theirs) == (("north", {"max": "2"}),)
    assert tags.has_group("north", "a") and not tags.has_group("north", "c")
    tags.drop_group("north", "a")
    assert tags.memberships(*OX1) == set() and tags.group_tags_of(*OX1) == ()
    assert tags.memberships(*theirs) == {"north"} and tags.tenants_of_group("north") == ["b"]
    tags.drop_device(theirs)
    assert tags.group_tags("north", "b") == {"max": "2"} and tags.memberships(*theirs) == set()
