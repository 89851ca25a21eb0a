"""Failed logins counted, and who is locked out for a while: a username after
``per_user`` failures within ``window`` seconds, an address after ``per_address``. Pure: the
clock is injected, nothing is stored (a restart forgets, as the failures were in memory).

A username is counted whether or not such a user exists, and a locked one is answered the same
way (``retry_after``), so that neither a failure nor a lockout says which names are users. A
success forgets the user's failures (not the address's: one good password from an address
does not excuse twenty wrong ones for other names).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Usernames and addresses remembered at most: past it the ones with nothing recent are
# forgotten, so that a flood of made-up names cannot grow the process without bound.
MAX_REMEMBERED = 10_000


@dataclass(frozen=True, kw_only=True, slots=True)
class LockoutPolicy:
    per_user: int = 5
    per_address: int = 20
    window: float = 15 * 60.0  # seconds in which failures are counted
    lock: float = 15 * 60.0  # seconds a username or address stays locked


class _Failures:
    """One username's or address's failures within the window, and the end of its lock."""

    __slots__ = ("at", "locked_until")

    def __init__(self) -> None:
        self.at: deque[float] = deque()
        self.locked_until = 0.0


class Lockout:
    def __init__(self, policy: LockoutPolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._users: dict[str, _Failures] = {}
        self._addresses: dict[str, _Failures] = {}

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds until a login of ``username`` from ``address`` may be tried again; None:
        it may be now."""
        now = self._clock()
        waits = [
            failures.locked_until - now
            for failures in (self._users.get(username), self._addresses.get(address))
            if failures is not None and failures.locked_until > now
        ]
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        policy = self._policy
        self._count(self._users, username, policy.per_user, now)
        self._count(self._addresses, address, policy.per_address, now)

    def succeeded(self, username: str) -> None:
        self._users.pop(username, None)

    def _count(self, book: dict[str, _Failures], key: str, limit: int, now: float) -> None:
        if len(book) >= MAX_REMEMBERED:
            self._forget_quiet(book, now)
        failures = book.setdefault(key, _Failures())
        failures.at.append(now)
        while failures.at and failures.at[0] <= now - self._policy.window:
            failures.at.popleft()
        if len(failures.at) >= limit:
            failures.locked_until = now + self._policy.lock
            failures.at.clear()

    def _forget_quiet(self, book: dict[str, _Failures], now: float) -> None:
        window = self._policy.window
        for key in [
            key
            for key, failures in book.items()
            if failures.locked_until <= now and (not failures.at or failures.at[-1] <= now - window)
        ]:
            del book[key]
