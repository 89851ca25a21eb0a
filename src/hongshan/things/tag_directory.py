"""The registry's tags and groups as the message path reads them: in memory, no query.

A group is named within its tenant: two tenants may each have a group ``north``, so groups
are kept by ``(tenant, name)`` (``GroupKey``). A device's groups are all of its own tenant
(``GroupTable`` adds to a group only devices of the group's tenant), so a device's groups are
its names alone.

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
GroupKey = tuple[str, str]  # (tenant, group name): a group's name is unique within its tenant
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
        self._groups: dict[GroupKey, _Group] = {}
        self._member_of: dict[DeviceKey, set[str]] = {}  # (only devices in a group)
        self._tenant_of_member: dict[DeviceKey, str] = {}  # (the tenant of its groups)
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

    def has_group(self, name: str, tenant: str = DEFAULT_TENANT) -> bool:
        return (tenant, name) in self._groups

    def tenants_of_group(self, name: str) -> list[str]:
        """The tenants that have a group so named, in order (the admin token, of every tenant,
        names a group by its name alone)."""
        return sorted(tenant for tenant, named in self._groups if named == name)

    def group_tags(self, name: str, tenant: str = DEFAULT_TENANT) -> Mapping[str, str] | None:
        """The group's tags; None when there is no such group."""
        group = self._groups.get((tenant, name))
        return None if group is None else group.tags

    def group_tags_of(self, product_key: str, device_name: str) -> GroupTags:
        """Each of the device's groups that has tags, with them, by the group's name."""
        key = (product_key, device_name)
        found = self._group_tags.get(key)
        if found is None:
            names = self._member_of.get(key)
            if not names:
                return ()
            tenant = self._tenant_of_member[key]
            groups = [(name, self._groups[tenant, name]) for name in sorted(names)]
            found = tuple((name, group.tags) for name, group in groups if group.tags)
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
        tenant = self._tenant_of_member.pop(key, None)
        for name in self._member_of.pop(key, ()):
            self._groups[tenant or DEFAULT_TENANT, name].members.discard(key)

    def put_group(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        """A group of ``tenant`` made (with no tags and no members yet)."""
        self._groups.setdefault((tenant, name), _Group(tenant))

    def drop_group(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        """A group deleted: its devices are in it no more."""
        group = self._groups.pop((tenant, name), None)
        if group is None:
            return
        for key in group.members:
            self._leave(key, name)

    def change_group(
        self,
        name: str,
        put: Mapping[str, str] = NO_TAGS,
        remove: Iterable[str] = (),
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """A group's tags: those of ``remove`` dropped, then ``put`` set, as the registry
        writes them."""
        group = self._groups.get((tenant, name))
        if group is None:
            return
        gone = set(remove)
        group.tags = {k: v for k, v in group.tags.items() if k not in gone} | dict(put)
        for key in group.members:
            self._group_tags.pop(key, None)

    def add_members(
        self, name: str, keys: Iterable[DeviceKey], tenant: str = DEFAULT_TENANT
    ) -> None:
        """Devices of ``tenant`` put in its group ``name``."""
        group = self._groups.get((tenant, name))
        if group is None:
            return
        for key in keys:
            group.members.add(key)
            self._member_of.setdefault(key, set()).add(name)
            self._tenant_of_member[key] = tenant
            self._group_tags.pop(key, None)

    def remove_members(
        self, name: str, keys: Iterable[DeviceKey], tenant: str = DEFAULT_TENANT
    ) -> None:
        group = self._groups.get((tenant, name))
        if group is None:
            return
        for key in keys:
            if key in group.members:
                group.members.discard(key)
                self._leave(key, name)

    def _leave(self, key: DeviceKey, name: str) -> None:
        names = self._member_of.get(key)
        if names is not None:
            names.discard(name)
            if not names:
                del self._member_of[key]
                del self._tenant_of_member[key]
        self._group_tags.pop(key, None)
