"""The one token bucket, on a fake clock: no sleeps. Steps are powers of
two so the float arithmetic is exact."""

from __future__ import annotations

import pytest

from futon.transports.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_new_bucket_is_full_and_allows_a_burst_then_refuses() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert bucket.full() and bucket.tokens == 3
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.tokens == 0


def test_tokens_come_back_at_the_rate_and_never_above_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    for _ in range(3):
        bucket.take()
    clock.advance(0.25)  # half a token
    assert bucket.wait() == pytest.approx(0.25)
    assert not bucket.try_take()
    clock.advance(0.25)
    assert bucket.wait() == 0.0
    assert bucket.try_take()
    clock.advance(3600)
    assert bucket.tokens == 3 and bucket.full()


def test_wait_then_take_paces_a_queue_exactly() -> None:
    """How the IRC server and bot mode use it: wait, sleep that long, take."""
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=2, clock=clock)
    sent_at = []
    for _ in range(6):
        clock.advance(bucket.wait())
        bucket.take()
        sent_at.append(clock.now - 1000.0)
    assert sent_at == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1.0])


def test_full_means_nothing_is_owed() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    bucket.take()
    assert not bucket.full()
    clock.advance(0.5)
    assert not bucket.full()
    clock.advance(0.5)
    assert bucket.full()


def test_retune_keeps_saved_tokens_up_to_the_new_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=10, clock=clock)
    bucket.retune(rate=64, burst=3)
    assert bucket.tokens == 3
    for _ in range(3):
        bucket.take()
    clock.advance(1 / 64)
    assert bucket.try_take()  # the new rate applies
    assert not bucket.try_take()


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    bucket.take()
    clock.advance(-50)
    assert bucket.tokens == 0
    clock.advance(1)
    assert bucket.tokens == 1


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (1, 0.5)])
def test_limits_that_could_never_pass_a_line_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBucket(rate, burst, clock=FakeClock())
