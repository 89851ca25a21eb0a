"""Issue 12, the hardening battery: memory a peer can make the server hold, and connections it
can hold open before CONNECT."""

from __future__ import annotations

from hongshan.mqtt.memo import TopicMemo, topic_weight
from hongshan.mqtt.trie import SubscriptionTrie


def test_topic_memo_is_bounded_by_its_keys_bytes() -> None:
    """Issue 12 case 1: the trie's match memo kept up to 65,536 topic names whole, so a device
    publishing to ever new 60 KB topics grew the server by hundreds of MB for good. A memo is
    now bounded by its keys' bytes as well as by their count."""
    memo: TopicMemo[int] = TopicMemo(max_entries=1000, max_bytes=64 * 1024)
    for i in range(500):
        memo.remember(f"{i:05d}/" + "x" * 4000, i)  # 4 KB each: 16 fit in 64 KB
        assert memo.key_bytes <= 64 * 1024
        assert memo.key_bytes == sum(topic_weight(topic) for topic in memo)
    assert 0 < len(memo) <= 16
    assert memo[f"{499:05d}/" + "x" * 4000] == 499  # the newest is remembered
    memo.remember("far/" + "y" * (64 * 1024 // 8), 1)  # an eighth of the budget: never kept
    assert "far/" + "y" * (64 * 1024 // 8) not in memo
    memo.remember("街/" * 2000, 2)  # non-ASCII counts four bytes a character
    assert memo.key_bytes == sum(topic_weight(topic) for topic in memo)
    for i in range(2000):  # and by entries, with short topics
        memo.remember(f"t/{i}", i)
        assert len(memo) <= 1000


def test_subscription_trie_memo_stays_within_its_budget() -> None:
    """Issue 12 case 1: routing 6,000 messages to distinct 60 KB topics kept every topic
    name in the trie's memo (360 MB); it now keeps a few MB of them (``MEMO_BYTES``), and
    still answers correctly."""
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.subscribe("/sys/+/+/x/#", "app", 1)
    long_level = "z" * 60_000
    for i in range(600):
        found = trie.matches(f"/sys/pk/dn/x/{i}{long_level}")
        assert found == [{"app": 1}]
    kept = sum(len(topic) for topic in trie._memo)  # the bound itself is what is tested
    assert kept <= 16 * 1024 * 1024  # it was 36 MB
