"""Garbage, oversize frames, unknown versions and corrupt batches: the broker answers or
closes that one connection, and keeps serving everyone else."""

from __future__ import annotations

import struct

from broker.protocol.batch import CRC_START
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import frame
from broker.protocol.records import Record, build_batch
from broker.protocol.versions import ApiKey
from tests.integration.conftest import BrokerProcess
from tests.integration.rawclient import RawClient


def _still_serving(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        response = client.request(
            ApiKey.API_VERSIONS,
            3,
            "ApiVersionsRequest",
            client_software_name="t",
            client_software_version="1",
        )
        assert response.error_code == ErrorCode.none


def test_garbage_frame_closes_only_that_connection(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        client.send_raw(frame(b"\xff\xfe garbage that is not a request"))
        assert client.receive_frame() is None
    _still_serving(broker)


def test_oversize_frame_is_refused_without_reading_it(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", 2_000_000_000))
        assert client.receive_frame() is None
    _still_serving(broker)


def test_unknown_api_key_closes_connection(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        client.send_raw(frame(struct.pack(">hhih", 999, 0, 1, 0)))
        assert client.receive_frame() is None
    _still_serving(broker)


def test_future_api_versions_gets_v0_error_with_our_ranges(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as client:
        client.send_raw(frame(struct.pack(">hhih", ApiKey.API_VERSIONS, 99, 5, 0)))
        payload = client.receive_frame()
    assert payload is not None
    correlation_id, error_code, count = struct.unpack_from(">ihi", payload)
    assert (correlation_id, error_code) == (5, ErrorCode.unsupported_version)
    ranges = [struct.unpack_from(">hhh", payload, 10 + 6 * i) for i in range(count)]
    assert (ApiKey.PRODUCE, 0, 8) in ranges
    assert (ApiKey.API_VERSIONS, 0, 4) in ranges


def test_corrupt_batch_gets_corrupt_message_and_nothing_is_appended(broker: BrokerProcess) -> None:
    batch = bytearray(build_batch([Record(offset=0, timestamp_ms=1, key=b"k", value=b"v")]))
    batch[CRC_START + 10] ^= 0xFF  # flip a byte covered by the CRC
    with RawClient(broker.bootstrap) as client:
        client.request(
            ApiKey.CREATE_TOPICS,
            4,
            "CreateTopicsRequest",
            timeout=5000,
            validate_only=False,
            topics=(
                client.build(
                    ApiKey.CREATE_TOPICS,
                    4,
                    "CreatableTopic",
                    name="crc",
                    num_partitions=1,
                    replication_factor=1,
                    assignments=(),
                    configs=(),
                ),
            ),
        )
        partition = client.produce("crc", bytes(batch))
        assert partition.error_code == ErrorCode.corrupt_message
        offsets = client.request(
            ApiKey.LIST_OFFSETS,
            5,
            "ListOffsetsRequest",
            replica_id=-1,
            isolation_level=0,
            topics=(
                client.build(
                    ApiKey.LIST_OFFSETS,
                    5,
                    "ListOffsetsTopic",
                    name="crc",
                    partitions=(
                        client.build(
                            ApiKey.LIST_OFFSETS,
                            5,
                            "ListOffsetsPartition",
                            partition_index=0,
                            current_leader_epoch=-1,
                            timestamp=-1,
                        ),
                    ),
                ),
            ),
        )
        assert offsets.topics[0].partitions[0].offset == 0
    _still_serving(broker)
