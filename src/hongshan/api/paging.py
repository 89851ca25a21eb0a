"""Every list of the API pages, sorts and searches the same way.

Query: ``limit`` (1 to 1000, default 100), ``offset`` (default 0), ``sort`` (a field the list
names, ``-field`` for descending; each list documents its fields and its default order) and
``q`` (text the items' names contain, case-insensitive, on the lists that have names). Answer:
a ``Page`` — ``items``, ``total`` (how many match, across pages), ``limit``, ``offset``. A
sort field the list does not have is 400 naming the ones it has.

Lists kept in memory (products, groups, rules, scenes, routes, conditions) are sorted and cut
by ``in_memory``; lists in the database pass ``Paging.order`` to their store's query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeAlias, TypeVar

import msgspec
from litestar.di import Dependency, Provide
from litestar.params import QueryParameter

from hongshan.things.model import RegistryError

T = TypeVar("T")

MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1  # what SQL's OFFSET takes (a 64-bit integer)
Order = tuple[str, bool]  # (field, descending)


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    total: int
    limit: int
    offset: int


class Paging(msgspec.Struct, frozen=True, kw_only=True):
    limit: int = 100
    offset: int = 0
    sort: str | None = None
    q: str | None = None

    def order(self, fields: Sequence[str], default: str) -> Order:
        """The order asked for, checked against ``fields`` (the list's own); ``default``
        (``-field`` for descending) when none is asked for."""
        asked = self.sort or default
        descending = asked.startswith("-")
        field = asked.removeprefix("-").removeprefix("+")
        if field not in fields:
            raise RegistryError(f"sort: {field!r} is not one of {', '.join(fields)}", "invalid")
        return field, descending

    def page(self, items: list[T], total: int) -> Page[T]:
        return Page(items=items, total=total, limit=self.limit, offset=self.offset)

    def in_memory(
        self,
        items: Sequence[T],
        keys: Mapping[str, Callable[[T], Any]],
        default: str,
        text: Callable[[T], str] | None = None,
    ) -> Page[T]:
        """``items`` searched by ``q`` in ``text`` of each, sorted by the field asked for (its
        key in ``keys``; ties keep their order), and cut to the page."""
        field, descending = self.order(list(keys), default)
        chosen = list(items)
        if self.q and text is not None:
            needle = self.q.casefold()
            chosen = [item for item in chosen if needle in text(item).casefold()]
        key = keys[field]
        chosen.sort(key=lambda item: _sortable(key(item)), reverse=descending)
        return self.page(chosen[self.offset : self.offset + self.limit], len(chosen))


BY_NAME_AND_TIMES: Mapping[str, Callable[[Any], Any]] = {
    "id": lambda item: item.id,
    "name": lambda item: item.name,
    "createdAt": lambda item: item.created_at,
    "updatedAt": lambda item: item.updated_at,
}
"""The sort fields of a list of things with an id, a name and two times (rules, scenes)."""


def _sortable(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)  # (None sorts lowest)


def paging(
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="items per page")] = 100,
    offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="items skipped")] = 0,
    sort: Annotated[
        str | None,
        QueryParameter(description="a field of the list; -field for descending", max_length=64),
    ] = None,
    q: Annotated[
        str | None, QueryParameter(description="text the names contain", max_length=128)
    ] = None,
) -> Paging:
    return Paging(limit=limit, offset=offset, sort=sort, q=q or None)


PAGED = {"paging": Provide(paging, sync_to_thread=False)}
"""A list route's ``dependencies``: its handler names a ``paging: Paged`` parameter."""

Paged: TypeAlias = Annotated[Paging, Dependency(kind="named")]
