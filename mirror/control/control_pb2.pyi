from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LostRange(_message.Message):
    __slots__ = ("first_offset", "end_offset", "detected_at_ms")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DETECTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    end_offset: int
    detected_at_ms: int
    def __init__(self, first_offset: _Optional[int] = ..., end_offset: _Optional[int] = ..., detected_at_ms: _Optional[int] = ...) -> None: ...

class PartitionStatus(_message.Message):
    __slots__ = ("source_topic", "partition", "target_topic", "state", "source_position", "source_end", "target_end", "lag_records", "lag_ms", "records_copied", "bytes_copied", "records_per_s", "last_error", "lost", "records_lost")
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_TOPIC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_POSITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_END_FIELD_NUMBER: _ClassVar[int]
    TARGET_END_FIELD_NUMBER: _ClassVar[int]
    LAG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_COPIED_FIELD_NUMBER: _ClassVar[int]
    BYTES_COPIED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_PER_S_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    RECORDS_LOST_FIELD_NUMBER: _ClassVar[int]
    source_topic: str
    partition: int
    target_topic: str
    state: str
    source_position: int
    source_end: int
    target_end: int
    lag_records: int
    lag_ms: int
    records_copied: int
    bytes_copied: int
    records_per_s: float
    last_error: str
    lost: _containers.RepeatedCompositeFieldContainer[LostRange]
    records_lost: int
    def __init__(self, source_topic: _Optional[str] = ..., partition: _Optional[int] = ..., target_topic: _Optional[str] = ..., state: _Optional[str] = ..., source_position: _Optional[int] = ..., source_end: _Optional[int] = ..., target_end: _Optional[int] = ..., lag_records: _Optional[int] = ..., lag_ms: _Optional[int] = ..., records_copied: _Optional[int] = ..., bytes_copied: _Optional[int] = ..., records_per_s: _Optional[float] = ..., last_error: _Optional[str] = ..., lost: _Optional[_Iterable[_Union[LostRange, _Mapping]]] = ..., records_lost: _Optional[int] = ...) -> None: ...

class FlowStatus(_message.Message):
    __slots__ = ("source", "target", "state", "member_index", "member_count", "topics", "lag_records", "lag_ms", "records_per_s", "records_copied", "records_lost", "groups_checkpointed", "groups_synced", "last_checkpoint_ms", "last_error", "partitions")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    LAG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_PER_S_FIELD_NUMBER: _ClassVar[int]
    RECORDS_COPIED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_LOST_FIELD_NUMBER: _ClassVar[int]
    GROUPS_CHECKPOINTED_FIELD_NUMBER: _ClassVar[int]
    GROUPS_SYNCED_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    state: str
    member_index: int
    member_count: int
    topics: _containers.RepeatedScalarFieldContainer[str]
    lag_records: int
    lag_ms: int
    records_per_s: float
    records_copied: int
    records_lost: int
    groups_checkpointed: int
    groups_synced: int
    last_checkpoint_ms: int
    last_error: str
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionStatus]
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., state: _Optional[str] = ..., member_index: _Optional[int] = ..., member_count: _Optional[int] = ..., topics: _Optional[_Iterable[str]] = ..., lag_records: _Optional[int] = ..., lag_ms: _Optional[int] = ..., records_per_s: _Optional[float] = ..., records_copied: _Optional[int] = ..., records_lost: _Optional[int] = ..., groups_checkpointed: _Optional[int] = ..., groups_synced: _Optional[int] = ..., last_checkpoint_ms: _Optional[int] = ..., last_error: _Optional[str] = ..., partitions: _Optional[_Iterable[_Union[PartitionStatus, _Mapping]]] = ...) -> None: ...

class WorkerStatusReply(_message.Message):
    __slots__ = ("worker_id", "started_ms", "flows")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_MS_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    started_ms: int
    flows: _containers.RepeatedCompositeFieldContainer[FlowStatus]
    def __init__(self, worker_id: _Optional[str] = ..., started_ms: _Optional[int] = ..., flows: _Optional[_Iterable[_Union[FlowStatus, _Mapping]]] = ...) -> None: ...

class FlowRequest(_message.Message):
    __slots__ = ("source", "target")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class FlowReply(_message.Message):
    __slots__ = ("ok", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...
