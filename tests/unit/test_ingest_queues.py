"""BoundedFrameQueue: drop policies, counters, blocking, close, thread safety."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.ingest.queues import BoundedFrameQueue, DropPolicy, QueueClosed


def drain(q: BoundedFrameQueue[int]) -> list[int]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_drop_oldest_keeps_the_freshest() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(3, DropPolicy.DROP_OLDEST)
    assert all(q.put(i) for i in range(10))  # never refuses, never waits
    assert drain(q) == [7, 8, 9]
    s = q.stats()
    assert (s.put, s.got, s.dropped_oldest, s.dropped_newest, s.dropped) == (10, 3, 7, 0, 7)
    assert s.high_water == 3


def test_drop_newest_keeps_what_is_queued() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(3, "drop_newest")
    accepted = [q.put(i) for i in range(10)]
    assert accepted == [True] * 3 + [False] * 7
    assert drain(q) == [0, 1, 2]
    s = q.stats()
    assert (s.dropped_oldest, s.dropped_newest) == (0, 7)
    assert q.dropped == 7


def test_block_waits_for_room_and_loses_nothing() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(2, DropPolicy.BLOCK)
    n = 200
    got: list[int] = []

    def consume() -> None:
        for item in q:
            got.append(item)
            if len(got) % 50 == 0:
                time.sleep(0.01)  # a slow consumer

    t = threading.Thread(target=consume)
    t.start()
    for i in range(n):
        assert q.put(i)
    q.close()
    t.join(5)
    assert got == list(range(n))
    s = q.stats()
    assert s.dropped == 0 and s.put == n and s.got == n and s.high_water <= 2


def test_block_put_times_out_and_counts() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(1, DropPolicy.BLOCK)
    assert q.put(1)
    t0 = time.monotonic()
    assert not q.put(2, timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    assert q.stats().timed_out == 1
    assert drain(q) == [1]


def test_close_wakes_a_blocked_producer_and_consumer() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(1, DropPolicy.BLOCK)
    q.put(0)
    results: dict[str, object] = {}
    producer = threading.Thread(target=lambda: results.update(put=q.put(1)))
    producer.start()
    time.sleep(0.05)
    q.close()
    producer.join(2)
    assert results["put"] is False
    assert q.get(timeout=0.1) == 0  # queued items can still be taken after close
    with pytest.raises(QueueClosed):
        q.get(timeout=1.0)
    assert not q.put(5)
    assert q.stats().refused_closed == 2

    empty: BoundedFrameQueue[int] = BoundedFrameQueue(1)
    consumer = threading.Thread(target=lambda: results.update(err=_get_err(empty)))
    consumer.start()
    time.sleep(0.05)
    empty.close()
    consumer.join(2)
    assert results["err"] == "closed"


def _get_err(q: BoundedFrameQueue[int]) -> str:
    try:
        q.get()
    except QueueClosed:
        return "closed"
    return "item"


def test_get_timeout_raises_empty() -> None:
    q: BoundedFrameQueue[int] = BoundedFrameQueue(1)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        BoundedFrameQueue(0)
    with pytest.raises(ValueError, match="drop policy"):
        BoundedFrameQueue(1, "drop_random")


@pytest.mark.parametrize("policy", [DropPolicy.DROP_OLDEST, DropPolicy.DROP_NEWEST])
def test_many_producers_counters_add_up(policy: DropPolicy) -> None:
    q: BoundedFrameQueue[tuple[int, int]] = BoundedFrameQueue(8, policy)
    per = 2000

    def produce(k: int) -> None:
        for i in range(per):
            q.put((k, i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    got = 0
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) or len(q):
        try:
            q.get(timeout=0.01)
            got += 1
        except queue.Empty:
            pass
    s = q.stats()
    assert s.got == got
    assert s.put + s.dropped_newest == 4 * per
    assert s.put == got + s.dropped_oldest


@settings(max_examples=60, deadline=None)
@given(
    maxsize=st.integers(1, 6),
    policy=st.sampled_from([DropPolicy.DROP_OLDEST, DropPolicy.DROP_NEWEST]),
    ops=st.lists(st.booleans(), max_size=60),
)
def test_matches_a_reference_model(maxsize: int, policy: DropPolicy, ops: list[bool]) -> None:
    """True = put the next number, False = get; compare with a plain-list model."""
    q: BoundedFrameQueue[int] = BoundedFrameQueue(maxsize, policy)
    model: list[int] = []
    dropped = 0
    n = 0
    for is_put in ops:
        if is_put:
            if len(model) >= maxsize:
                dropped += 1
                if policy is DropPolicy.DROP_OLDEST:
                    model.pop(0)
                    model.append(n)
            else:
                model.append(n)
            q.put(n)
            n += 1
        elif model:
            assert q.get_nowait() == model.pop(0)
        else:
            with pytest.raises(queue.Empty):
                q.get_nowait()
        assert len(q) == len(model)
    assert q.dropped == dropped
