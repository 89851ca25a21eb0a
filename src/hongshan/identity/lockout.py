"""Failed logins counted, and who is locked out for a while: a username after
``per_user`` failures within ``window`` seconds, an address after ``per_address``. Pure: the
clock is injected and nothing is stored here. A username's count and lock are handed out
(``user_lock``) for the caller to keep durable and handed back at start (``restore``), so a
restart does not give an attacker a fresh count; an address's live in memory only (a restart
forgets them).

A username is counted whether or not such a user exists, and a locked one is answered the same
way (``retry_after``), so that neither a failure nor a lockout says which names are users. A
success forgets the user's failures (not the address's: one good password from an address
does not excuse twenty wrong ones for other names). Usernames are keyed by the SHA-256 of the
name as typed (``user_key``): what is kept is never a name (nor a password typed into the
name's field by mistake), and a name of any length has a key of one size.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
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


@dataclass(frozen=True, kw_only=True, slots=True)
class UserLock:
    """A username's state as it is kept: its ``key`` (``user_key``), the times (the clock's,
    seconds) of its failures within the window, and the end of its lock (0: none)."""

    key: str
    failures: tuple[float, ...]
    locked_until: float


def user_key(username: str) -> str:
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


class _Failures:
    """One username's or address's failures within the window, and the end of its lock."""

    __slots__ = ("at", "locked_until")

    def __init__(self) -> None:
        self.at: deque[float] = deque()
        self.locked_until = 0.0


class Lockout:
    """Counts failures and answers locks; owns the counts in memory, never stores them (the
    caller keeps ``user_lock`` where it wants and ``restore``s it). The clock must be one that
    a restart keeps (wall time) when the user locks are kept across restarts."""

    def __init__(self, policy: LockoutPolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._users: dict[str, _Failures] = {}  # by user_key
        self._addresses: dict[str, _Failures] = {}

    @property
    def policy(self) -> LockoutPolicy:
        return self._policy

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds until a login of ``username`` from ``address`` may be tried again; None:
        it may be now."""
        now = self._clock()
        waits = [
            failures.locked_until - now
            for failures in (self._users.get(user_key(username)), self._addresses.get(address))
            if failures is not None and failures.locked_until > now
        ]
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        policy = self._policy
        self._count(self._users, user_key(username), policy.per_user, now)
        self._count(self._addresses, address, policy.per_address, now)

    def succeeded(self, username: str) -> None:
        self._users.pop(user_key(username), None)

    def user_lock(self, username: str) -> UserLock | None:
        """The username's count and lock as they are now, to be kept; None when there is
        nothing to keep (a success forgot it)."""
        key = user_key(username)
        failures = self._users.get(key)
        if failures is None:
            return None
        return UserLock(key=key, failures=tuple(failures.at), locked_until=failures.locked_until)

    def restore(self, locks: Iterable[UserLock]) -> None:
        """Usernames' counts and locks as they were kept (at start); what the window or the
        lock has left behind by now is dropped."""
        now = self._clock()
        window = self._policy.window
        for lock in locks:
            failures = _Failures()
            failures.at.extend(at for at in lock.failures if at > now - window)
            failures.locked_until = lock.locked_until
            if failures.at or failures.locked_until > now:
                self._users[lock.key] = failures

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
