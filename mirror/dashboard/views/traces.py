"""Trace search (`/traces?topic=&key=&trace_id=&min_ms=&since=&until=`) and a trace's
waterfall (`/traces/TRACE_ID`), from the topology's span store.

Every filter is a query parameter, so a search is a link an alert or a runbook can carry:
`/traces?topic=orders&key=customer-7&since=-1h`. Times are ISO 8601 (without a zone: the
server's local time) or relative to now (`-15m`, `-2h`, `-1d`). The store is only read: when
no process has written it yet, there is nothing to find.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.spanstore import SpanStore
from mirror.dashboard.views.common import config, not_found, page
from mirror.dashboard.waterfall import layout

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class TraceQuery:
    topic: str | None = None
    key: str | None = None
    trace_id: str | None = None
    min_ms: float | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    limit: int = DEFAULT_LIMIT

    def any_filter(self) -> bool:
        return any(
            v is not None
            for v in (
                self.topic,
                self.key,
                self.trace_id,
                self.min_ms,
                self.since_ns,
                self.until_ns,
            )
        )


def parse_time(text: str, now_ns: int) -> int:
    """ISO 8601 (no zone: local time) or `-N[smhd]` before now, in ns since the epoch."""
    relative = _RELATIVE.match(text)
    if relative:
        return now_ns - int(float(relative[1]) * _UNIT_S[relative[2]] * 1e9)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1e9)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give ISO 8601 (2026-11-30T10:00) or -15m, -2h, -1d"
        ) from None


def parse_query(params: QueryParams, now_ns: int) -> TraceQuery:
    """The search a URL asks for; ValueError naming the parameter that does not parse."""

    def text(name: str) -> str | None:
        value = params.get(name, "").strip()
        return value or None

    def number(name: str, kind: type[float] | type[int]) -> float | int | None:
        value = text(name)
        try:
            return None if value is None else kind(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number") from None

    since, until = text("since"), text("until")
    min_ms, limit = number("min_ms", float), number("limit", int)
    return TraceQuery(
        topic=text("topic"),
        key=text("key"),
        trace_id=text("trace_id"),
        min_ms=min_ms,
        since_ns=None if since is None else parse_time(since, now_ns),
        until_ns=None if until is None else parse_time(until, now_ns),
        limit=max(1, min(int(limit or DEFAULT_LIMIT), MAX_LIMIT)),
    )


def _store(request: Request) -> SpanStore | None:
    path = config(request).spans_path
    return SpanStore(path) if path.exists() else None


async def _search(request: Request, query: TraceQuery) -> tuple[list[dict[str, Any]], str]:
    """(the traces found, newest first; a note when there is no store to search)."""
    store = _store(request)
    if store is None:
        return [], f"no spans recorded yet: {config(request).spans_path} does not exist"
    found = await anyio.to_thread.run_sync(
        lambda: store.search(
            topic=query.topic,
            key=query.key,
            trace_id=query.trace_id,
            min_duration_ms=query.min_ms,
            since_ns=query.since_ns,
            until_ns=query.until_ns,
            limit=query.limit,
        )
    )
    return [summary.to_json() for summary in found], ""


async def traces(request: Request) -> Response:
    context: dict[str, Any] = {"nav": "traces", "title": "traces", "form": request.query_params}
    try:
        query = parse_query(request.query_params, time.time_ns())
    except ValueError as exc:
        return page(
            request, "traces.html", 400, **context, searched=True, traces=[], problem=str(exc)
        )
    found, note = await _search(request, query)
    return page(
        request, "traces.html", **context, searched=query.any_filter(), traces=found, problem=note
    )


async def api_traces(request: Request) -> Response:
    try:
        query = parse_query(request.query_params, time.time_ns())
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    found, note = await _search(request, query)
    return JSONResponse({"traces": found, "note": note})


async def _waterfall(request: Request) -> dict[str, Any] | None:
    trace_id = request.path_params["trace_id"].lower()
    store = _store(request)
    if store is None:
        return None
    spans = await anyio.to_thread.run_sync(store.trace, trace_id)
    return layout(trace_id, spans) if spans else None


async def trace(request: Request) -> Response:
    found = await _waterfall(request)
    if found is None:
        return not_found(request, f"no span of trace {request.path_params['trace_id']} is stored")
    return page(
        request, "trace.html", nav="traces", title=f"trace {found['trace_id']}", trace=found
    )


async def api_trace(request: Request) -> Response:
    found = await _waterfall(request)
    if found is None:
        return not_found(request, f"no span of trace {request.path_params['trace_id']} is stored")
    return JSONResponse(found)


ROUTES = [
    Route("/traces", traces),
    Route("/traces/{trace_id}", trace),
    Route("/api/traces", api_traces),
    Route("/api/traces/{trace_id}", api_trace),
]
