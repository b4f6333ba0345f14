"""The topology map (`/`) and one flow (`/flows/SOURCE:TARGET`): live pages.

Both are drawn in the browser from the sampler's feed (`/api/events`): the server sends the
frame, the figures arrive each second. Their JSON twins return the latest sample and the
kept series, for scripts and for a page's first paint.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirror.dashboard.sampler import Sampler
from mirror.dashboard.views.common import not_found, page


def _sampler(request: Request) -> Sampler:
    sampler: Sampler = request.app.state.sampler
    return sampler


def _known_flow(sampler: Sampler, flow: str) -> bool:
    """A flow running now, or one the series still remember (e.g. before a switchover);
    any before the first sample, which cannot tell yet."""
    if sampler.latest is None:
        return True
    running = {f["id"] for f in sampler.latest.get("flows", [])}
    return flow in running or flow in sampler.series.flows


async def topology(request: Request) -> Response:
    return page(request, "topology.html", nav="topology", title="topology")


async def flow(request: Request) -> Response:
    name = request.path_params["flow"]
    if not _known_flow(_sampler(request), name):
        return not_found(request, f"no flow {name} (flows are named SOURCE:TARGET)")
    source, _, target = name.partition(":")
    return page(
        request, "flow.html", nav="topology", title=name, flow=name, source=source, target=target
    )


async def api_status(request: Request) -> Response:
    latest = _sampler(request).latest
    if latest is None:
        return JSONResponse({"error": "no sample yet"}, status_code=503)
    return JSONResponse(latest)


async def api_series(request: Request) -> Response:
    return JSONResponse(_sampler(request).series.to_json())


async def api_flow(request: Request) -> Response:
    sampler, name = _sampler(request), request.path_params["flow"]
    if not _known_flow(sampler, name):
        return not_found(request, f"no flow {name}")
    flows = (sampler.latest or {}).get("flows", [])
    current = next((f for f in flows if f["id"] == name), None)
    return JSONResponse({"flow": current, "series": sampler.series.to_json(name)})


ROUTES = [
    Route("/", topology),
    Route("/flows/{flow}", flow),
    Route("/api/status", api_status),
    Route("/api/series", api_series),
    Route("/api/flows/{flow}", api_flow),
]
