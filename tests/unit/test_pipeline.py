"""ProducePipeline: produce requests in flight together, responses in request order."""

from __future__ import annotations

import anyio
import pytest

from broker.pipeline import MAX_IN_FLIGHT, Later, ProducePipeline, is_produce
from broker.protocol.codec import Frame

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Responses:
    """Dispatches that finish when the test says so, and what was sent."""

    def __init__(self) -> None:
        self.release: dict[int, anyio.Event] = {}
        self.started: list[int] = []
        self.sent: list[bytes] = []

    def dispatch(self, number: int) -> Later[Frame | None]:
        """Dispatched now (as appends are); answered when released."""
        self.started.append(number)
        self.release[number] = event = anyio.Event()

        async def finish() -> Frame | None:
            await event.wait()
            return [b"response-%d" % number]

        return Later(finish)

    async def send(self, frame: Frame | None) -> None:
        assert frame is not None
        self.sent.append(b"".join(bytes(part) for part in frame))


async def test_responses_leave_in_request_order_whatever_order_waits_end() -> None:
    responses = Responses()
    async with anyio.create_task_group() as tasks:
        pipeline = ProducePipeline(tasks, responses.send)
        for number in range(3):
            await pipeline.room()
            pipeline.add(responses.dispatch(number))
        pipeline.add([b"ready-3"])  # answered at once, still after the three before it
        await anyio.wait_all_tasks_blocked()
        responses.release[2].set()
        responses.release[1].set()
        await anyio.wait_all_tasks_blocked()
        assert responses.sent == [], "1 and 2 wait for 0"
        responses.release[0].set()
        await pipeline.drain()
        assert responses.sent == [b"response-0", b"response-1", b"response-2", b"ready-3"]


async def test_at_most_max_in_flight_then_the_reader_waits() -> None:
    responses = Responses()
    added = 0
    async with anyio.create_task_group() as tasks:
        pipeline = ProducePipeline(tasks, responses.send)

        async def add_all() -> None:
            nonlocal added
            for number in range(MAX_IN_FLIGHT + 1):
                await pipeline.room()
                pipeline.add(responses.dispatch(number))
                added += 1

        tasks.start_soon(add_all)
        await anyio.wait_all_tasks_blocked()
        assert added == MAX_IN_FLIGHT
        responses.release[0].set()
        await anyio.wait_all_tasks_blocked()
        assert added == MAX_IN_FLIGHT + 1
        for number in range(1, MAX_IN_FLIGHT + 1):
            responses.release[number].set()
        await pipeline.drain()
    assert len(responses.sent) == MAX_IN_FLIGHT + 1


async def test_a_failed_dispatch_stops_the_pipeline_and_drain_raises_it() -> None:
    async def broken() -> Frame | None:
        raise ValueError("handler bug")

    sent: list[Frame | None] = []

    async def send(frame: Frame | None) -> None:
        sent.append(frame)

    async with anyio.create_task_group() as tasks:
        pipeline = ProducePipeline(tasks, send)
        pipeline.add(Later(broken))
        with pytest.raises(ValueError, match="handler bug"):
            await pipeline.drain()
    assert sent == [] and isinstance(pipeline.failure, ValueError)


def test_only_produce_requests_are_pipelined() -> None:
    assert is_produce(bytearray(b"\x00\x00\x00\x09"))
    assert not is_produce(bytearray(b"\x00\x01\x00\x0c"))  # Fetch
    assert not is_produce(bytearray(b"\x00"))
