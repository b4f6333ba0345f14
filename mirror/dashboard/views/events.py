"""`/api/events`: the sampler's feed as server-sent events.

First a `history` event (the kept series, the latest sample and the sampling interval) so a
page draws its charts at once, then a `sample` event each second. Server-sent events rather
than a websocket: the feed goes one way, EventSource reconnects by itself, and it passes
through proxies as a plain GET.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mirror.dashboard.sampler import Sampler


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def events(request: Request) -> Response:
    sampler: Sampler = request.app.state.sampler

    async def stream() -> AsyncIterator[str]:
        async with sampler.subscribe() as samples:
            yield _event(
                "history",
                {
                    "series": sampler.series.to_json(),
                    "capacity": sampler.series.capacity,
                    "interval_s": sampler.interval_s,
                    "latest": sampler.latest,
                },
            )
            async for sample in samples:
                yield _event("sample", sample)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


ROUTES = [Route("/api/events", events)]
