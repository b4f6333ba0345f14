"""Kafka error codes (re-exported from kio) and the protocol-level exceptions we raise."""

from kio.schema.errors import ErrorCode

__all__ = ["ErrorCode", "FrameTooLarge", "MalformedRequest", "ProtocolError", "UnsupportedVersion"]


class ProtocolError(Exception):
    """The peer sent bytes we cannot make sense of; the connection should close."""


class FrameTooLarge(ProtocolError):
    """A frame announced a size above the configured limit (or a negative size)."""


class MalformedRequest(ProtocolError):
    """A request header or body could not be decoded."""


class UnsupportedVersion(ProtocolError):
    """The (api_key, version) pair is outside what we serve."""

    def __init__(self, api_key: int, version: int) -> None:
        super().__init__(f"unsupported api_key={api_key} version={version}")
        self.api_key = api_key
        self.version = version
