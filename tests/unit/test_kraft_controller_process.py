"""A one-member controller quorum in-process on loopback: compaction into a snapshot, the
WAL rewritten small, a restart from it, and garbage Raft traffic refused."""

from __future__ import annotations

from pathlib import Path

import anyio
import grpc
import pytest

from broker.kraft.controller import controller_pb2, controller_pb2_grpc
from broker.kraft.controller.config import ControllerConfig
from broker.kraft.controller.process import WAL_NAME, serve
from broker.kraft.controller_client import ControllerClient, ControllerError
from broker.ports import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # grpc.aio runs on asyncio only


async def _allocate_many(config: ControllerConfig, count: int) -> list[tuple[int, int]]:
    client = ControllerClient(config.quorum, timeout_s=10)
    try:
        epoch = await client.register_broker(1, "inc", "127.0.0.1", 9001)
        return [await client.allocate_producer_ids(1, epoch) for _ in range(count)]
    finally:
        await client.aclose()


async def test_compaction_restart_and_garbage(tmp_path: Path) -> None:
    port = free_port()
    config = ControllerConfig(
        1, tmp_path, "127.0.0.1", port, {1: ("127.0.0.1", port)}, snapshot_every_entries=5
    )
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            await tasks.start(serve, config)
            blocks = await _allocate_many(config, 23)
            assert [first for first, _ in blocks] == [1000 + 1000 * i for i in range(23)]
            wal_size = (tmp_path / WAL_NAME).stat().st_size
            assert wal_size < 4_000  # rewritten at each snapshot, never the whole history

            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = controller_pb2_grpc.ControllerQuorumStub(channel)
                for garbage in (b"\x00garbage", b'{"type":"VoteRequest"}'):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.Raft(controller_pb2.RaftBatch(messages=[garbage]), timeout=5)
                    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            tasks.cancel_scope.cancel()

        async with anyio.create_task_group() as tasks:
            await tasks.start(serve, config)
            client = ControllerClient(config.quorum, timeout_s=10)
            update = await client.fetch_metadata(0, wait_ms=0)
            assert update.snapshot is not None
            assert update.snapshot.next_producer_id > 20_000
            with pytest.raises(ControllerError) as stale:
                await client.allocate_producer_ids(1, 0)
            assert stale.value.error_code == 77
            await client.aclose()
            assert (await _allocate_many(config, 1))[0][0] == 1000 + 1000 * 23
            tasks.cancel_scope.cancel()
