"""Passwords hashed with argon2id, and verified in a small pool of threads of their own: the
users file's (MQTT clients, ``identity.passwords``) and the people's (``services.people``).

Argon2 is deliberately slow (tens of milliseconds) and takes memory; argon2-cffi releases the
GIL, so the work goes to worker threads and the event loop goes on serving.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

# RFC 9106's second recommended option (memory-constrained): t=3, m=64 MiB, p=4; we use less
# memory and one lane so that a burst of verifications does not exhaust a small gateway.
_HASHER = PasswordHasher(time_cost=3, memory_cost=19 * 1024, parallelism=1)
# Each verification takes 19 MiB and the allocator keeps it per thread: the event loop's default
# pool (up to 32 threads) would hold hundreds of MiB after a reconnect burst; two threads keep
# both cores busy and the memory bounded.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
# About 30 ms each on two threads: 256 waiting is some four seconds of work, well inside the
# default connect timeout.
MAX_PENDING_VERIFICATIONS = 256


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def checked_hash(hashed: str) -> str:
    """``hashed`` when it is an argon2id hash (as ``hash_password`` and ``hongshan passwd``
    make them: ``$argon2id$v=19$m=…,t=…,p=…$salt$hash``); ValueError saying what it is not."""
    if not hashed.startswith("$argon2id$"):
        raise ValueError(
            "expected an argon2id hash ('$argon2id$v=19$m=...'), as 'hongshan passwd' writes"
        )
    try:
        extract_parameters(hashed)
    except InvalidHashError:
        raise ValueError(
            "not a whole argon2id hash ('$argon2id$v=19$m=...,t=...,p=...$salt$hash')"
        ) from None
    return hashed


async def hash_in_pool(password: str) -> str:
    """``hash_password`` in the pool: off the event loop, and bounded like the verifications."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, hash_password, password)


async def verify_password(hashed: str, password: str | bytes) -> bool:
    """Whether ``password`` is the one ``hashed`` was made from, checked in the pool (False
    for a hash that is not argon2's)."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, _verify, hashed, password)


def _verify(hashed: str, password: str | bytes) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
