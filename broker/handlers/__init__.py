"""Request handlers, one module per API family, registered by api key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from broker.protocol.codec import Request
from broker.protocol.versions import ApiKey

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

Handler = Callable[["Broker", Request, "ConnectionInfo"], Awaitable[Any]]
HANDLERS: dict[int, Handler] = {}


def handles(*api_keys: ApiKey) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for key in api_keys:
            assert key not in HANDLERS, f"two handlers for {key!r}"
            HANDLERS[int(key)] = handler
        return handler

    return register


def _register_all() -> None:
    from broker.handlers import (  # noqa: F401
        acls,
        admin,
        api_versions,
        cluster,
        configs,
        fetch,
        groups,
        link,
        offsets,
        produce,
        sasl,
        scram_users,
    )


_register_all()
