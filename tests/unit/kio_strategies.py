"""Hypothesis strategies that build any kio message from its schema metadata.

Used to round-trip every request and response version we serve through the
real codec (encode with kio's writer, decode with its native reader).
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from functools import cache
from typing import Any

from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    is_optional,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_SMALL_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "uvarint": (0, 2**31 - 1),
}


def _primitive(kafka_type: str) -> st.SearchStrategy[Any]:
    if kafka_type in _INT_RANGES:
        low, high = _INT_RANGES[kafka_type]
        return st.integers(low, high)
    if kafka_type == "bool":
        return st.booleans()
    if kafka_type == "string":
        return _SMALL_TEXT
    if kafka_type in ("bytes", "records"):
        return st.binary(max_size=16)
    if kafka_type == "uuid":
        return st.uuids().map(lambda u: u if u.int else uuid.UUID(int=1))
    if kafka_type == "float64":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kafka_type == "error_code":
        return st.sampled_from(list(ErrorCode))
    if kafka_type.startswith("timedelta"):
        return st.integers(0, 2**31 - 1).map(lambda ms: datetime.timedelta(milliseconds=ms))
    if kafka_type == "datetime_i64":
        return st.integers(0, 2**40).map(lambda ms: _EPOCH + datetime.timedelta(milliseconds=ms))
    raise NotImplementedError(kafka_type)


def _field_strategy(field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    kind = classify_field(field)
    if isinstance(kind, EntityField):
        inner = entity_strategy(kind.type_)
    elif isinstance(kind, EntityTupleField):
        inner = st.lists(entity_strategy(kind.type_), max_size=2).map(tuple)
    elif isinstance(kind, PrimitiveTupleField):
        inner = st.lists(_primitive(field.metadata["kafka_type"]), max_size=3).map(tuple)
    else:
        inner = _primitive(field.metadata["kafka_type"])
    return st.one_of(st.none(), inner) if is_optional(field) else inner


@cache
def entity_strategy(cls: type) -> st.SearchStrategy[Any]:
    fields = {f.name: st.deferred(lambda f=f: _field_strategy(f)) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)
