"""The operator side of the gRPC control API, for `regionlink` commands and tests.

Replies come back as plain dicts shaped like `WorkerStatus.as_dict()`, so callers print
JSON or compare with a status object without knowing protobuf.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from mirror.control import control_pb2, control_pb2_grpc

# A worker's control address is reached directly; a proxy from the environment would hide it.
_CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


class ControlError(Exception):
    """A control call failed; the message is one line, fit to show an operator."""


class ControlUnavailable(ControlError):
    """Nothing answers at the address: no worker there, or it did not reply in time."""


async def fetch_status(address: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The worker's status, equal to its `WorkerStatus.as_dict()`."""
    reply = await _call(address, "GetStatus", control_pb2.StatusRequest(), timeout_s)
    return message_to_dict(reply)


async def pause_flow(
    address: str, source: str, target: str, timeout_s: float = 5.0
) -> tuple[bool, str]:
    """Ask the worker to pause the flow source->target: (ok, the worker's message)."""
    request = control_pb2.FlowRequest(source=source, target=target)
    reply = await _call(address, "PauseFlow", request, timeout_s)
    return bool(reply.ok), str(reply.message)


async def resume_flow(
    address: str, source: str, target: str, timeout_s: float = 5.0
) -> tuple[bool, str]:
    """Ask the worker to resume the flow source->target: (ok, the worker's message)."""
    request = control_pb2.FlowRequest(source=source, target=target)
    reply = await _call(address, "ResumeFlow", request, timeout_s)
    return bool(reply.ok), str(reply.message)


def message_to_dict(message: Message) -> dict[str, Any]:
    """Fields in proto order with native values (json_format would turn int64 into str)."""
    data: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if field.is_repeated:
            data[field.name] = [message_to_dict(v) if is_message else v for v in value]
        else:
            data[field.name] = message_to_dict(value) if is_message else value
    return data


async def _call(address: str, method: str, request: Message, timeout_s: float) -> Any:
    async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = control_pb2_grpc.WorkerControlStub(channel)
        try:
            return await getattr(stub, method)(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _error(address, timeout_s, exc) from None


def _error(address: str, timeout_s: float, exc: grpc.aio.AioRpcError) -> ControlError:
    code, details = exc.code(), " ".join(str(exc.details() or "").split())
    if code == grpc.StatusCode.UNAVAILABLE:
        if "refused" in details.lower():
            reason = "connection refused"
        elif "resolving" in details or "Domain name not found" in details:
            reason = "cannot resolve the host"
        else:
            reason = details or "unavailable"
        return ControlUnavailable(f"no worker answers at {address} ({reason})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ControlUnavailable(f"no worker answers at {address} (no reply in {timeout_s:g}s)")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return ControlError(f"{address} answers but is not a regionlink worker ({details})")
    return ControlError(f"worker at {address} failed the call: {code.name}: {details}")
