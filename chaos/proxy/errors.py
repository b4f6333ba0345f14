"""The one error the proxy's API answers with: an HTTP status and Toxiproxy's message.

The messages are Toxiproxy's own (api.go), so scripts written against it read ours alike.
"""

from __future__ import annotations


class ApiError(Exception):
    """Rendered as Toxiproxy renders its errors: `{"error": message, "status": status}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


def bad_body(detail: str) -> ApiError:
    """A body that is not JSON or has a field of the wrong type (400)."""
    return ApiError(400, f"bad request body: {detail}")


def missing_field(field: str) -> ApiError:
    return ApiError(400, f"missing required field: {field}")


def proxy_not_found() -> ApiError:
    return ApiError(404, "proxy not found")


def proxy_exists() -> ApiError:
    return ApiError(409, "proxy already exists")


def toxic_not_found() -> ApiError:
    return ApiError(404, "toxic not found")


def toxic_exists() -> ApiError:
    return ApiError(409, "toxic already exists")


def invalid_stream() -> ApiError:
    return ApiError(400, "stream was invalid, can be either upstream or downstream")


def invalid_toxic_type() -> ApiError:
    return ApiError(400, "invalid toxic type")
