"""Toxiproxy's HTTP API (api.go) as a Starlette app over a `Registry`.

Routes, methods and status codes are Toxiproxy's: updates accept POST (what clients such as
toxiproxy-python send) and PATCH; every error, unknown routes included, is a JSON
`{"error", "status"}`. Like Toxiproxy we refuse requests whose User-Agent starts with
"Mozilla/": a web page open in an operator's browser must not be able to cut links.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chaos.proxy.errors import ApiError, bad_body
from chaos.proxy.registry import PopulateError, Registry


def _version() -> str:
    try:
        return f"regionlink {version('regionlink')}"
    except PackageNotFoundError:
        return "regionlink"


def create_app(registry: Registry) -> Starlette:
    async def proxy_index(request: Request) -> Response:
        return JSONResponse({name: p.to_json() for name, p in registry.proxies().items()})

    async def proxy_create(request: Request) -> Response:
        proxy = await registry.create(await _json(request))
        return JSONResponse(proxy.to_json(), status_code=201)

    async def proxy_show(request: Request) -> Response:
        return JSONResponse(registry.get(request.path_params["proxy"]).to_json())

    async def proxy_update(request: Request) -> Response:
        name = request.path_params["proxy"]
        registry.get(name)
        proxy = await registry.update(name, await _json(request))
        return JSONResponse(proxy.to_json())

    async def proxy_delete(request: Request) -> Response:
        await registry.delete(request.path_params["proxy"])
        return Response(status_code=204)

    async def toxic_index(request: Request) -> Response:
        proxy = registry.get(request.path_params["proxy"])
        return JSONResponse([toxic.to_json() for toxic in proxy.toxic_list()])

    async def toxic_create(request: Request) -> Response:
        name = request.path_params["proxy"]
        registry.get(name)  # 404 for a missing proxy comes before a bad body
        return JSONResponse(registry.add_toxic(name, await _json(request)).to_json())

    async def toxic_show(request: Request) -> Response:
        proxy = registry.get(request.path_params["proxy"])
        return JSONResponse(proxy.toxic(request.path_params["toxic"]).to_json())

    async def toxic_update(request: Request) -> Response:
        proxy, toxic = request.path_params["proxy"], request.path_params["toxic"]
        registry.get(proxy).toxic(toxic)
        return JSONResponse(registry.update_toxic(proxy, toxic, await _json(request)).to_json())

    async def toxic_delete(request: Request) -> Response:
        registry.remove_toxic(request.path_params["proxy"], request.path_params["toxic"])
        return Response(status_code=204)

    async def reset(request: Request) -> Response:
        await registry.reset()
        return Response(status_code=204)

    async def populate(request: Request) -> Response:
        try:
            proxies = await registry.populate(await _json(request))
        except PopulateError as exc:
            body = {**exc.error.to_json(), "proxies": [p.to_json() for p in exc.proxies]}
            return JSONResponse(body, status_code=exc.error.status)
        return JSONResponse({"proxies": [p.to_json() for p in proxies]}, status_code=201)

    async def show_version(request: Request) -> Response:
        return JSONResponse({"version": _version()})

    update = ["POST", "PATCH"]
    routes = [
        Route("/reset", reset, methods=["POST"]),
        Route("/proxies", proxy_index, methods=["GET"]),
        Route("/proxies", proxy_create, methods=["POST"]),
        Route("/populate", populate, methods=["POST"]),
        Route("/proxies/{proxy}", proxy_show, methods=["GET"]),
        Route("/proxies/{proxy}", proxy_update, methods=update),
        Route("/proxies/{proxy}", proxy_delete, methods=["DELETE"]),
        Route("/proxies/{proxy}/toxics", toxic_index, methods=["GET"]),
        Route("/proxies/{proxy}/toxics", toxic_create, methods=["POST"]),
        Route("/proxies/{proxy}/toxics/{toxic}", toxic_show, methods=["GET"]),
        Route("/proxies/{proxy}/toxics/{toxic}", toxic_update, methods=update),
        Route("/proxies/{proxy}/toxics/{toxic}", toxic_delete, methods=["DELETE"]),
        Route("/version", show_version, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.add_middleware(_RefuseBrowsers)
    return app


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise bad_body(str(exc)) from None


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.to_json(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such route) and 405 (wrong method), in Toxiproxy's shape."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail, "status": exc.status_code},
        status_code=exc.status_code,
        headers=exc.headers,
    )


class _RefuseBrowsers:
    """403 for a browser's User-Agent (Toxiproxy's stopBrowsersMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            agent = dict(scope["headers"]).get(b"user-agent", b"")
            if agent.startswith(b"Mozilla/"):
                error = ApiError(403, "User agent not allowed")
                await JSONResponse(error.to_json(), status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
