"""Idempotent producer over the wire: a retried batch is not appended twice; gaps are refused."""

from __future__ import annotations

from typing import Any

from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, build_batch
from broker.protocol.versions import ApiKey
from tests.integration.conftest import BrokerProcess
from tests.integration.rawclient import RawClient


def _produce(client: RawClient, topic: str, batch: bytes) -> Any:
    return client.produce(topic, batch)


def _batch(producer_id: int, epoch: int, sequence: int, count: int) -> bytes:
    records = [Record(i, 1000 + i, b"k", b"v%d" % (sequence + i)) for i in range(count)]
    return build_batch(
        records, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence
    )


def test_retry_is_answered_with_original_offset_and_gaps_are_refused(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        init = client.request(
            ApiKey.INIT_PRODUCER_ID,
            4,
            "InitProducerIdRequest",
            transactional_id=None,
            transaction_timeout=60000,
            producer_id=-1,
            producer_epoch=-1,
        )
        assert init.error_code == ErrorCode.none
        pid = init.producer_id
        client.request(
            ApiKey.METADATA,
            8,
            "MetadataRequest",
            topics=(client.build(ApiKey.METADATA, 8, "MetadataRequestTopic", name="idem"),),
            allow_auto_topic_creation=True,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )

        first = _produce(client, "idem", _batch(pid, 0, 0, 3))
        second = _produce(client, "idem", _batch(pid, 0, 3, 2))
        assert (first.error_code, first.base_offset) == (ErrorCode.none, 0)
        assert (second.error_code, second.base_offset) == (ErrorCode.none, 3)

        retry = _produce(client, "idem", _batch(pid, 0, 0, 3))
        assert (retry.error_code, retry.base_offset) == (ErrorCode.none, 0), (
            "duplicate answered, not appended"
        )

        gap = _produce(client, "idem", _batch(pid, 0, 9, 1))
        assert gap.error_code == ErrorCode.out_of_order_sequence_number

        next_ok = _produce(client, "idem", _batch(pid, 0, 5, 1))
        assert (next_ok.error_code, next_ok.base_offset) == (ErrorCode.none, 5)

    broker.kill()
    broker.start()
    with RawClient(broker.bootstrap) as client:
        after_restart = _produce(client, "idem", _batch(pid, 0, 3, 2))
        assert (after_restart.error_code, after_restart.base_offset) == (ErrorCode.none, 3), (
            "producer state is rebuilt from the log after a crash"
        )
        old_epoch_gap = _produce(client, "idem", _batch(pid, 1, 7, 1))
        assert old_epoch_gap.error_code == ErrorCode.out_of_order_sequence_number, (
            "new epoch starts at 0"
        )
        bumped = _produce(client, "idem", _batch(pid, 1, 0, 1))
        assert (bumped.error_code, bumped.base_offset) == (ErrorCode.none, 6)
        stale = _produce(client, "idem", _batch(pid, 0, 6, 1))
        assert stale.error_code == ErrorCode.invalid_producer_epoch
