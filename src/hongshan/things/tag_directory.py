"""The registry's tags and groups as the message path reads them: in memory, no query.

A rule's ``attribute(key)`` reads the tag of the device its message speaks for, on every
message; a product's alarm condition whose threshold is kept in a tag reads the device's tags
and then its groups' on every post it concerns. ``TagDirectory`` answers both with dict
lookups, beside the ``Directory`` of products and devices: the same registry
(``store.registry.SQLRegistry``, and its ``GroupTable`` for groups) loads it at open and tells
it each change once committed; it knows nothing of the database.

It is a class of its own rather than more of ``Directory`` because groups are a table of
their own, changed by ``GroupTable``, which has no business with the devices' secrets and
lifecycle that ``Directory`` keeps; and because a group's change reaches many devices at once,
which ``Directory``'s one-record-per-device shape does not say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from hongshan.identity.principals import DEFAULT_TENANT

DeviceKey = tuple[str, str]  # (product key, device name)
GroupTags = tuple[tuple[str, Mapping[str, str]], ...]  # (group name, its tags), by name

NO_TAGS: Mapping[str, str] = {}
NO_GROUPS: Set[str] = frozenset()


class _Group:
    __slots__ = ("members", "tags", "tenant")

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.tags: Mapping[str, str] = NO_TAGS
        self.members: set[DeviceKey] = set()


def _changed(
    tags: Mapping[str, str], put: Mapping[str, str], gone: Iterable[str]
) -> dict[str, str]:
    kept = {**tags, **put}
    for key in gone:
        kept.pop(key, None)
    return kept


class TagDirectory:
    """Every device's tags, every group's tags and members, and each device's groups, in
    memory. Owns those dicts, and the answer it gives per device of its groups' tags (kept
    until one of them changes). A mapping it hands out is never changed afterwards — a change
    puts a new one in its place — so a message that read one reads one state throughout.
    Holds what the registry holds and nothing per message: a device without tags or groups
    costs nothing. Never reads or writes a database: the registry loads it at open and tells
    it what it committed."""

    def __init__(self) -> None:
        self._devices: dict[DeviceKey, Mapping[str, str]] = {}  # (only devices with tags)
        self._groups: dict[str, _Group] = {}
        self._member_of: dict[DeviceKey, set[str]] = {}  # (only devices in a group)
        self._group_tags: dict[DeviceKey, GroupTags] = {}  # what ``group_tags_of`` answered

    # -- what the message path asks ----------------------------------------------------------

    def tags_of(self, product_key: str, device_name: str) -> Mapping[str, str]:
        """The device's own tags (empty when it has none, or there is no such device)."""
        return self._devices.get((product_key, device_name), NO_TAGS)

    def groups_of(self, product_key: str, device_name: str) -> list[str]:
        """The names of the groups the device is in, in order."""
        return sorted(self._member_of.get((product_key, device_name), ()))

    def memberships(self, product_key: str, device_name: str) -> Set[str]:
        """The names of the groups the device is in, unordered and not copied (the live API
        asks on every message): to read at once, never to keep or change."""
        return self._member_of.get((product_key, device_name), NO_GROUPS)

    def has_group(self, name: str) -> bool:
        return name in self._groups

    def tenant_of_group(self, name: str) -> str | None:
        """The group's tenant; None when there is no such group."""
        group = self._groups.get(name)
        return None if group is None else group.tenant

    def group_tags(self, name: str) -> Mapping[str, str] | None:
        """The group's tags; None when there is no such group."""
        group = self._groups.get(name)
        return None if group is None else group.tags

    def group_tags_of(self, product_key: str, device_name: str) -> GroupTags:
        """Each of the device's groups that has tags, with them, by the group's name."""
        key = (product_key, device_name)
        found = self._group_tags.get(key)
        if found is None:
            names = self._member_of.get(key)
            if not names:
                return ()
            found = tuple(
                (name, self._groups[name].tags) for name in sorted(names) if self._groups[name].tags
            )
            self._group_tags[key] = found
        return found

    # -- what the registry committed ---------------------------------------------------------

    def change_device(
        self, key: DeviceKey, put: Mapping[str, str] = NO_TAGS, remove: Iterable[str] = ()
    ) -> None:
        """A device's tags set (a key given again takes the new value), then those of
        ``remove`` dropped, as the registry writes them."""
        tags = _changed(self._devices.get(key, NO_TAGS), put, remove)
        if tags:
            self._devices[key] = tags
        else:
            self._devices.pop(key, None)

    def drop_device(self, key: DeviceKey) -> None:
        """A device deleted: its tags and its places in groups go."""
        self._devices.pop(key, None)
        self._group_tags.pop(key, None)
        for name in self._member_of.pop(key, ()):
            self._groups[name].members.discard(key)

    def put_group(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        """A group of ``tenant`` made (with no tags and no members yet)."""
        self._groups.setdefault(name, _Group(tenant))

    def drop_group(self, name: str) -> None:
        """A group deleted: its devices are in it no more."""
        group = self._groups.pop(name, None)
        if group is None:
            return
        for key in group.members:
            names = self._member_of[key]
            names.discard(name)
            if not names:
                del self._member_of[key]
            self._group_tags.pop(key, None)

    def change_group(
        self, name: str, put: Mapping[str, str] = NO_TAGS, remove: Iterable[str] = ()
    ) -> None:
        """A group's tags: those of ``remove`` dropped, then ``put`` set, as the registry
        writes them."""
        group = self._groups.get(name)
        if group is None:
            return
        gone = set(remove)
        group.tags = {k: v for k, v in group.tags.items() if k not in gone} | dict(put)
        for key in group.members:
            self._group_tags.pop(key, None)

    def add_members(self, name: str, keys: Iterable[DeviceKey]) -> None:
        group = self._groups.get(name)
        if group is None:
            return
        for key in keys:
            group.members.add(key)
            self._member_of.setdefault(key, set()).add(name)
            self._group_tags.pop(key, None)

    def remove_members(self, name: str, keys: Iterable[DeviceKey]) -> None:
        group = self._groups.get(name)
        if group is None:
            return
        for key in keys:
            group.members.discard(key)
            names = self._member_of.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._member_of[key]
            self._group_tags.pop(key, None)
