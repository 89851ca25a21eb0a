"""The subscription trie against the specification's matching rules (MQTT 4.7)."""

from __future__ import annotations

import random

import pytest

from hongshan.mqtt.topics import topic_matches
from hongshan.mqtt.trie import SubscriptionTrie

CASES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "$SYS/broker/uptime", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/broker/uptime", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("a/b", "a/b", True),
    ("a/b", "a/B", False),
    ("a//b", "a//b", True),
    ("+/+/+", "a//b", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), CASES)
def test_match_table(topic_filter: str, topic: str, expected: bool) -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.subscribe(topic_filter, "c", 1)
    assert bool(trie.matches(topic)) is expected
    assert topic_matches(topic_filter, topic) is expected


def test_subscribe_replace_and_unsubscribe_prunes() -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    assert trie.subscribe("a/b/c", "x", 1) is None
    assert trie.subscribe("a/b/c", "x", 2) == 1
    assert len(trie) == 1
    trie.subscribe("a/+/c", "y", 3)
    assert sorted(v for d in trie.matches("a/b/c") for v in d.values()) == [2, 3]
    assert trie.unsubscribe("a/b/c", "x") == 2
    assert trie.unsubscribe("a/b/c", "x") is None
    assert trie.unsubscribe("a/+/c", "y") == 3
    assert len(trie) == 0
    assert trie._root.children == {}


def test_random_filters_agree_with_topic_matches() -> None:
    """The trie finds exactly the filters that the reference matcher says match."""
    rng = random.Random(7)
    words = ["a", "b", "", "$x"]
    filters = set()
    for _ in range(300):
        depth = rng.randint(1, 4)
        levels = [rng.choice([*words, "+"]) for _ in range(depth)]
        if rng.random() < 0.3:
            levels[-1] = "#"
        filters.add("/".join(levels))
    trie: SubscriptionTrie[str, str] = SubscriptionTrie()
    for f in filters:
        trie.subscribe(f, f, f)
    for _ in range(500):
        topic = "/".join(rng.choice(words) for _ in range(rng.randint(1, 5)))
        found = {v for d in trie.matches(topic) for v in d.values()}
        assert found == {f for f in filters if topic_matches(f, topic)}, topic


def test_items_lists_every_subscription() -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.subscribe("a/#", "x", 1)
    trie.subscribe("b", "y", 2)
    assert sorted(trie.items()) == [("a/#", "x", 1), ("b", "y", 2)]


def test_remembered_matches_follow_every_change() -> None:
    """Matches are remembered per topic; interleaved subscribes, unsubscribes and matches must
    still agree with the reference matcher after every step."""
    rng = random.Random(11)
    words = ["a", "b", "c"]
    topics = ["/".join(rng.choice(words) for _ in range(rng.randint(1, 3))) for _ in range(30)]
    trie: SubscriptionTrie[str, str] = SubscriptionTrie()
    live: set[tuple[str, str]] = set()  # (filter, client)
    for _ in range(3000):
        action = rng.random()
        depth = rng.randint(1, 3)
        topic_filter = "/".join(rng.choice([*words, "+"]) for _ in range(depth))
        if rng.random() < 0.2:
            topic_filter += "/#"
        client = rng.choice(["x", "y", "z"])
        if action < 0.4:
            trie.subscribe(topic_filter, client, client)
            live.add((topic_filter, client))
        elif action < 0.7 and live:
            topic_filter, client = rng.choice(sorted(live))
            trie.unsubscribe(topic_filter, client)
            live.discard((topic_filter, client))
        else:
            topic = rng.choice(topics)
            found = sorted(v for d in trie.matches(topic) for v in d.values())
            expected = sorted(c for f, c in live if topic_matches(f, topic))
            assert found == expected, topic
