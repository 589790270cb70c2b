"""Failed-login counting and the bounded queue of password checks."""

from __future__ import annotations

import asyncio

import pytest

from lantern.accounts.limits import FailureCounter, LoginLimiter
from lantern.accounts.service import hash_password, password_checker
from lantern.errors import Busy, TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_locked_account_may_try_again_once_its_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_address=100, per_account=3, window_seconds=600, clock=clock)
    for _ in range(3):
        limiter.attempt(address="a", account="ada@example.com")
        clock.now += 10
    with pytest.raises(TooManyRequests) as refused:
        limiter.attempt(address="b", account="ada@example.com")
    assert refused.value.retry_after == 600 - 30
    clock.now += 600 - 30
    limiter.attempt(address="b", account="ada@example.com")
    limiter.attempt(address="a", account="grace@example.com")


def test_a_success_takes_its_attempt_back_and_clears_the_accounts_failures() -> None:
    limiter = LoginLimiter(per_address=3, per_account=3, window_seconds=600, clock=Clock())
    for _ in range(2):
        limiter.attempt(address="a", account="ada@example.com")
    limiter.attempt(address="a", account="ada@example.com")
    limiter.succeeded(address="a", account="ada@example.com")
    limiter.attempt(address="a", account="ada@example.com")
    with pytest.raises(TooManyRequests, match="from this address"):
        limiter.attempt(address="a", account="grace@example.com")


def test_the_failure_tables_forget_the_oldest_keys_beyond_their_size() -> None:
    counter = FailureCounter(limit=2, window_seconds=60, max_keys=100)
    for i in range(1000):
        counter.add(f"10.0.{i // 256}.{i % 256}", now=float(i))
    assert len(counter.failures) == 100
    assert counter.wait("10.0.0.0", now=1000.0) == 0
    assert "10.0.3.231" in counter.failures


def test_password_checks_beyond_the_workers_and_queue_are_refused_at_once() -> None:
    checker = password_checker(workers=1, queue=1)
    stored = hash_password("the right one")

    async def attempt() -> str:
        try:
            matches, _ = await checker.verify(stored, "a wrong one")
        except Busy as exc:
            return f"busy, retry after {exc.retry_after}"
        return "matched" if matches else "checked"

    async def flood() -> list[str]:
        return await asyncio.gather(*(attempt() for _ in range(6)))

    outcomes = asyncio.run(flood())
    assert outcomes == ["checked", "checked"] + ["busy, retry after 1"] * 4
    assert asyncio.run(checker.verify(stored, "the right one")) == (True, None)
