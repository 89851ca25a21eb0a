"""The topic ACL, read from a file in the syntax of Mosquitto's ``acl_file``.

::

    # rules before the first "user" line apply to anonymous clients
    topic read $SYS/#

    user lamp-gateway
    topic readwrite town/lamps/#
    topic deny town/lamps/secret

    # patterns apply to every client; %c is its client id, %u its username
    pattern write devices/%c/telemetry
    pattern read devices/%c/commands/#

Access is ``read``, ``write``, ``readwrite`` (the default when omitted) or ``deny``. Everything
not granted is denied. A PUBLISH is allowed when a write rule matches its topic and no deny rule
does. A SUBSCRIBE filter is allowed when a read rule *covers* it (every topic the filter can
match, the rule matches too) and no deny rule covers it. Where a deny rule covers only part of a
subscription (``topic readwrite #`` with ``topic deny town/secret``), the topics it matches are
held back at delivery; clients without deny rules pay nothing for that check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from hongshan.broker.auth import Client, ReceiveFilter
from hongshan.errors import AccessFileError, RemoteProtocolError
from hongshan.mqtt.topics import topic_matches, validate_topic_filter

Access = Literal["read", "write", "readwrite", "deny"]


class AclRule(msgspec.Struct, frozen=True):
    access: Access
    topic_filter: str
    is_pattern: bool = False


class AclFile:
    def __init__(
        self,
        anonymous: list[AclRule],
        users: dict[str, list[AclRule]],
        patterns: list[AclRule],
    ) -> None:
        self.anonymous = anonymous
        self.users = users
        self.patterns = patterns

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> AclFile:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise AccessFileError(f"cannot read ACL file {path}: {exc.strerror}") from None
        return cls.parse(text, name=str(path))

    @classmethod
    def parse(cls, text: str, *, name: str = "<acl>") -> AclFile:
        anonymous: list[AclRule] = []
        users: dict[str, list[AclRule]] = {}
        patterns: list[AclRule] = []
        current = anonymous
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, _, rest = line.partition(" ")
            rest = rest.strip()
            if keyword == "user":
                if not rest:
                    raise AccessFileError(f"{name}:{number}: 'user' needs a username")
                current = users.setdefault(rest, [])
            elif keyword in ("topic", "pattern"):
                rule = _parse_rule(rest, is_pattern=keyword == "pattern", where=f"{name}:{number}")
                (patterns if keyword == "pattern" else current).append(rule)
            else:
                raise AccessFileError(f"{name}:{number}: unknown keyword {keyword!r}")
        return cls(anonymous, users, patterns)

    def access(self, client: Client) -> ClientRules:
        """The rules that apply to this client, with %c and %u filled in, worked out once."""
        own = self.anonymous if client.username is None else self.users.get(client.username, [])
        rules = [(r.access, r.topic_filter) for r in own]
        for rule in self.patterns:
            expanded = _expand(rule.topic_filter, client)
            if expanded is not None:
                rules.append((rule.access, expanded))
        return ClientRules(rules)


class ClientRules:
    """One client's ACL rules; implements ``hongshan.broker.auth.Access``."""

    __slots__ = ("receive_filter", "rules")

    def __init__(self, rules: list[tuple[Access, str]]) -> None:
        self.rules = rules
        denied = [f for access, f in rules if access == "deny"]
        self.receive_filter: ReceiveFilter | None = None
        if denied:

            def may_receive(topic: str) -> bool:
                return not any(topic_matches(rule, topic) for rule in denied)

            self.receive_filter = may_receive

    def may_publish(self, topic: str) -> bool:
        granted = False
        for access, topic_filter in self.rules:
            if topic_matches(topic_filter, topic):
                if access == "deny":
                    return False
                if access in ("write", "readwrite"):
                    granted = True
        return granted

    def may_subscribe(self, topic_filter: str) -> bool:
        granted = False
        for access, rule_filter in self.rules:
            if access == "deny":
                if filter_covers(rule_filter, topic_filter):
                    return False
            elif access in ("read", "readwrite") and filter_covers(rule_filter, topic_filter):
                granted = True
        return granted


def _parse_rule(rest: str, *, is_pattern: bool, where: str) -> AclRule:
    access: Access = "readwrite"
    first, _, remainder = rest.partition(" ")
    if first in ("read", "write", "readwrite", "deny"):
        access = first  # type: ignore[assignment]  # narrowed by the membership test
        topic_filter = remainder.strip()
    else:
        topic_filter = rest
    if not topic_filter:
        raise AccessFileError(f"{where}: a rule needs a topic")
    try:
        validate_topic_filter(topic_filter)
    except RemoteProtocolError as exc:
        raise AccessFileError(f"{where}: {topic_filter!r} is not a topic filter: {exc}") from None
    return AclRule(access, topic_filter, is_pattern)


def _expand(pattern: str, client: Client) -> str | None:
    """Substitute %c and %u; None when the rule cannot apply to this client.

    An identifier containing '+', '#' or '/' would turn a pattern into a wider filter than
    intended (client id "#" reading everyone's commands), so such a client gets no pattern
    rules, as in Mosquitto."""
    if "%u" in pattern:
        if client.username is None or _unsafe(client.username):
            return None
        pattern = pattern.replace("%u", client.username)
    if "%c" in pattern:
        if _unsafe(client.client_id):
            return None
        pattern = pattern.replace("%c", client.client_id)
    return pattern


def _unsafe(identifier: str) -> bool:
    return any(ch in identifier for ch in "+#/") or not identifier


def filter_covers(rule: str, topic_filter: str) -> bool:
    """True when every topic that ``topic_filter`` can match is also matched by ``rule``."""
    rule_levels = rule.split("/")
    filter_levels = topic_filter.split("/")
    if rule_levels[0] in ("+", "#") and filter_levels[0].startswith("$"):
        return False  # MQTT-4.7.2-1: a leading wildcard never matches a '$' topic
    for i, level in enumerate(rule_levels):
        if level == "#":
            return True
        if i >= len(filter_levels):
            return False
        wanted = filter_levels[i]
        if wanted == "#":
            return False
        if level == "+":
            continue
        if level != wanted:
            return False
    return len(filter_levels) == len(rule_levels)
