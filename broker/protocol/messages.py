"""Build kio messages of any version from plain Python values.

Fields differ between versions of one API; handlers pass every field they know
and `MessageBuilder` keeps those the version has, converting plain ints into
kio's field types (ErrorCode, timedelta, datetime). Handlers stay version-agnostic.
"""

from __future__ import annotations

import dataclasses
import datetime
from functools import cache
from types import ModuleType
from typing import Any

from kio.index import load_payload_module
from kio.schema.errors import ErrorCode
from kio.static.constants import EntityType

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _coerce(kafka_type: str, value: Any) -> Any:
    if kafka_type == "error_code" and not isinstance(value, ErrorCode):
        return ErrorCode(int(value))
    if kafka_type.startswith("timedelta") and isinstance(value, int):
        return datetime.timedelta(milliseconds=value)
    if kafka_type == "datetime_i64" and isinstance(value, int):
        return None if value < 0 else _EPOCH + datetime.timedelta(milliseconds=value)
    return value


@cache
def _field_types(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("kafka_type", "") for f in dataclasses.fields(cls)}


class MessageBuilder:
    """Constructs classes of one (api_key, version, kind) module by class name."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def make(self, class_name: str, /, **values: Any) -> Any:
        cls = getattr(self._module, class_name)
        types = _field_types(cls)
        kwargs = {k: _coerce(types[k], v) for k, v in values.items() if k in types}
        return cls(**kwargs)

    def has_field(self, class_name: str, field_name: str) -> bool:
        return field_name in _field_types(getattr(self._module, class_name))


@cache
def response_builder(api_key: int, version: int) -> MessageBuilder:
    return MessageBuilder(load_payload_module(api_key, version, EntityType.response))


@cache
def request_builder(api_key: int, version: int) -> MessageBuilder:
    return MessageBuilder(load_payload_module(api_key, version, EntityType.request))


def millis(value: datetime.timedelta | datetime.datetime | int | None, default: int = -1) -> int:
    """A kio timedelta/datetime field (or plain int) as integer milliseconds."""
    if value is None:
        return default
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    return int(value)
