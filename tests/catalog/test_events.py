"""The catalog's event log: ids, history, gaps, slow subscribers and shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from catalog import Event, EventData, EventLog, Gap, SubscriptionClosedError


def _data(project_id: str = "p1", rows: int = 1) -> EventData:
    return EventData(type="table.updated", time="2024-01-01T00:00:00.000Z", project_id=project_id, rows=rows)


def _publish(log: EventLog, count: int) -> list[Event]:
    events = []
    for index in range(count):
        event = log.publish(_data(rows=index))
        assert event is not None
        events.append(event)
    return events


def test_ids_increase_from_start_time() -> None:
    log = EventLog()
    first = log.publish(_data())
    second = log.publish(_data())

    assert first is not None and second is not None
    assert second.id == first.id + 1
    # Ids start at the creation time in microseconds, so an earlier process's ids are lower.
    assert first.id > 1_600_000_000 * 10**6


def test_replay_after_known_id_has_no_gap() -> None:
    log = EventLog()
    events = _publish(log, 5)

    async def subscribe() -> tuple[list[int], Gap | None]:
        subscription, missed, gap = log.subscribe(asyncio.get_running_loop(), events[1].id)
        subscription.cancel()
        return [event.id for event in missed], gap

    missed_ids, gap = asyncio.run(subscribe())

    assert missed_ids == [event.id for event in events[2:]]
    assert gap is None


def test_replay_reports_gap_after_history_overflow() -> None:
    log = EventLog(history_size=3)
    events = _publish(log, 6)

    async def subscribe() -> tuple[list[int], Gap | None]:
        subscription, missed, gap = log.subscribe(asyncio.get_running_loop(), events[0].id)
        subscription.cancel()
        return [event.id for event in missed], gap

    missed_ids, gap = asyncio.run(subscribe())

    assert missed_ids == [event.id for event in events[3:]]
    assert gap is not None
    assert gap.oldest_event_id == events[3].id


def test_replay_reports_gap_for_unknown_id() -> None:
    log = EventLog()
    [event] = _publish(log, 1)

    async def gaps() -> list[Gap | None]:
        found = []
        for last_id in (0, event.id + 10):
            subscription, _missed, gap = log.subscribe(asyncio.get_running_loop(), last_id)
            subscription.cancel()
            found.append(gap)
        return found

    from_before_start, from_the_future = asyncio.run(gaps())

    assert from_before_start is not None
    assert from_the_future is not None


def test_publish_from_thread_wakes_subscriber() -> None:
    log = EventLog()

    async def receive() -> list[int]:
        subscription, _missed, _gap = log.subscribe(asyncio.get_running_loop())
        writer = threading.Thread(target=log.publish, args=(_data(rows=7),), name="catalog-writer")
        writer.start()
        events = await subscription.next(timeout=30)
        writer.join()
        subscription.cancel()
        return [len(events), log.subscriber_count()]

    received, subscribers = asyncio.run(receive())

    assert received == 1
    assert subscribers == 0


def test_slow_subscriber_is_closed_not_writer() -> None:
    log = EventLog(queue_size=2)

    async def overflow() -> str:
        subscription, _missed, _gap = log.subscribe(asyncio.get_running_loop())
        for index in range(5):
            assert log.publish(_data(rows=index)) is not None
        queued = await subscription.next(timeout=1)
        assert len(queued) == 2
        with pytest.raises(SubscriptionClosedError) as closed:
            await subscription.next(timeout=1)
        return str(closed.value)

    reason = asyncio.run(overflow())

    assert "Last-Event-ID" in reason


def test_close_ends_waiting_subscriber() -> None:
    log = EventLog()

    async def wait_then_close() -> str:
        subscription, _missed, _gap = log.subscribe(asyncio.get_running_loop())
        asyncio.get_running_loop().call_later(0.05, log.close)
        with pytest.raises(SubscriptionClosedError) as closed:
            # The deadline is far: only close() can end this wait in time.
            await subscription.next(timeout=60)
        return str(closed.value)

    assert "stopping" in asyncio.run(wait_then_close())


def test_publish_survives_closed_loop() -> None:
    log = EventLog()
    loop = asyncio.new_event_loop()
    subscription, _missed, _gap = log.subscribe(loop)
    loop.close()

    event = log.publish(_data())

    assert event is not None
    assert subscription.closed_reason is not None
