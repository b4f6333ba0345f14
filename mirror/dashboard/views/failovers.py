"""The failover timeline (`/failovers`) and one operation (`/failovers/ID`), from the journal.

Each operation with its steps placed on its own time axis, RPO and RTO, and what it lost,
saved as diverged or recovered — what `regionlink failover history` and `failover show ID`
print. The pages reload themselves when the journal's newest operation moves on (the live
feed carries its id, state and steps done), so a switchover appears while it runs.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirror.dashboard import journal
from mirror.dashboard.views.common import config, not_found, page


def with_bars(operation: dict[str, Any]) -> dict[str, Any]:
    """Each step's place on the operation's time axis (left_pct, width_pct), for the
    timeline; steps never reached get none."""
    starts = [s["started_ms"] for s in operation["steps"] if s["started_ms"] is not None]
    ends = [s["finished_ms"] for s in operation["steps"] if s["finished_ms"] is not None]
    if not starts:
        return operation
    begin = min(starts)
    total = max(max(ends, default=begin) - begin, 1)
    for step in operation["steps"]:
        if step["started_ms"] is None:
            continue
        end = step["finished_ms"] if step["finished_ms"] is not None else begin + total
        step["offset_s"] = (step["started_ms"] - begin) / 1000
        step["left_pct"] = round((step["started_ms"] - begin) / total * 100, 3)
        step["width_pct"] = round(max((end - step["started_ms"]) / total * 100, 0.5), 3)
    operation["span_s"] = total / 1000
    return operation


async def _watch(request: Request) -> str:
    """The journal's newest operation as the live feed names it (`live.js` reloads the
    page when the feed's differs)."""
    return await anyio.to_thread.run_sync(journal.signature, config(request).state_dir)


async def failovers(request: Request) -> Response:
    found = await anyio.to_thread.run_sync(journal.operations, config(request).state_dir)
    return page(
        request,
        "failovers.html",
        nav="failovers",
        title="failovers",
        operations=[with_bars(op) for op in found],
        watch=await _watch(request),
    )


async def _operation(request: Request) -> dict[str, Any] | None:
    operation_id = request.path_params["operation_id"]
    state_dir = config(request).state_dir
    return await anyio.to_thread.run_sync(journal.operation, state_dir, operation_id)


async def failover(request: Request) -> Response:
    found = await _operation(request)
    if found is None:
        return not_found(request, f"no failover operation {request.path_params['operation_id']}")
    title = f"failover operation {found['id']}"
    op, watch = with_bars(found), await _watch(request)
    return page(request, "failover.html", nav="failovers", title=title, op=op, watch=watch)


async def api_failovers(request: Request) -> Response:
    found = await anyio.to_thread.run_sync(journal.operations, config(request).state_dir)
    return JSONResponse({"operations": found})


async def api_failover(request: Request) -> Response:
    found = await _operation(request)
    if found is None:
        return not_found(request, f"no failover operation {request.path_params['operation_id']}")
    return JSONResponse(found)


ROUTES = [
    Route("/failovers", failovers),
    Route("/failovers/{operation_id:int}", failover),
    Route("/api/failovers", api_failovers),
    Route("/api/failovers/{operation_id:int}", api_failover),
]
