"""What a flood of logins may cost: failed logins are counted, password checks are rationed.

An argon2id check takes about 64 MiB and a third of a second of one core. Run on the web
server's thread pool, 48 concurrent wrong passwords took 40 of them at once: a gigabyte of
memory and both cores, and ingest waited seconds. Here checks run on `workers` threads of
their own, at most `queue` more wait, and the rest are refused at once (`Busy`, 503).

Failed logins are counted per client address and per account over a sliding window; past
the limit every login from that address, or to that account, is refused (`TooManyRequests`,
429, with the seconds to wait) before any password is checked, right or wrong, and the
refusal is sent after a pause (REFUSAL_DELAY_SECONDS). The counts
live in the process's memory, each table bounded (the oldest keys are forgotten first); with
several worker processes each keeps its own.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lantern.errors import Busy, TooManyRequests

# Addresses and accounts remembered at once: ~1 KB each, so each table stays under 10 MB.
MAX_TRACKED = 10_000
# A refused login is answered after this pause, which costs the server nothing (no thread,
# no CPU): a flood that waits for each answer, as most do, then sends one login a second
# per connection instead of as many as the server can refuse (1,100 a second here).
REFUSAL_DELAY_SECONDS = 1.0
# What a refused login is told to wait when the password checks are all taken: one check
# is about a third of a second, so a second lets the queue move.
BUSY_RETRY_SECONDS = 1


class FailureCounter:
    """Failures per key within a sliding window, for a bounded number of keys."""

    def __init__(self, *, limit: int, window_seconds: float, max_keys: int = MAX_TRACKED) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds before `key` may try again (0 if it may now)."""
        times = self.failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.failures[key]
            return 0.0
        return times[0] + self.window - now if len(times) >= self.limit else 0.0

    def add(self, key: str, now: float) -> None:
        """One more failure for `key`."""
        times = self.failures.pop(key, None) or deque(maxlen=self.limit)
        times.append(now)
        self.failures[key] = times  # most recent last: the oldest keys go first
        while len(self.failures) > self.max_keys:
            self.failures.popitem(last=False)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)

    def discard_last(self, key: str) -> None:
        """Take back the latest failure of `key`."""
        times = self.failures.get(key)
        if times:
            times.pop()


class LoginLimiter:
    """Refuses logins from an address, or to an account, with too many recent failures."""

    def __init__(
        self,
        *,
        per_address: int,
        per_account: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.addresses = FailureCounter(limit=per_address, window_seconds=window_seconds)
        self.accounts = FailureCounter(limit=per_account, window_seconds=window_seconds)
        self.clock = clock
        self.lock = threading.Lock()

    def attempt(self, *, address: str, account: str) -> None:
        """Count a login attempt as failed until it succeeds; TooManyRequests if over the limit.

        Counted before the password is checked, so a flood is refused from its 21st request
        on, not once the slow checks of the first twenty are done.
        """
        with self.lock:
            now = self.clock()
            by_address = self.addresses.wait(address, now)
            by_account = self.accounts.wait(account, now)
            wait = max(by_address, by_account)
            if wait <= 0:
                self.addresses.add(address, now)
                self.accounts.add(account, now)
                return
        whom = "from this address" if by_address >= by_account else "for this account"
        seconds = math.ceil(wait)
        raise TooManyRequests(
            f"too many failed logins {whom}: try again in {seconds} s "
            "(an administrator can set a new password with `lantern user password`)",
            error="too_many_logins",
            retry_after=seconds,
        )

    def succeeded(self, *, address: str, account: str) -> None:
        """The attempt was right: it is not a failure, and the account's failures are forgotten
        (the address's other failures are not)."""
        with self.lock:
            self.addresses.discard_last(address)
            self.accounts.clear(account)

    def not_checked(self, *, address: str, account: str) -> None:
        """The attempt was never checked (the server was busy): it does not count."""
        with self.lock:
            self.addresses.discard_last(address)
            self.accounts.discard_last(account)


class PasswordChecker:
    """argon2id checks on a few threads of their own, with a bounded queue."""

    def __init__(self, hasher: PasswordHasher, *, workers: int, queue: int) -> None:
        self.hasher = hasher
        self.capacity = workers + queue
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password")
        self.taken = 0  # changed on the event loop only

    async def verify(self, password_hash: str, password: str) -> tuple[bool, str | None]:
        """Whether `password` matches, and a new hash if the parameters changed; or Busy.

        Called on the event loop: a waiting check holds no thread and no connection.
        """
        if self.taken >= self.capacity:
            raise Busy(
                "too many logins are being checked just now: retry in a moment",
                retry_after=BUSY_RETRY_SECONDS,
            )
        self.taken += 1
        try:
            future = self.executor.submit(self._verify, password_hash, password)
            return await asyncio.wrap_future(future)
        finally:
            self.taken -= 1

    def _verify(self, password_hash: str, password: str) -> tuple[bool, str | None]:
        try:
            self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False, None
        if self.hasher.check_needs_rehash(password_hash):
            return True, self.hasher.hash(password)
        return True, None
