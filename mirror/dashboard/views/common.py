"""What every view needs: the configuration, the templates, and a 404 page."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from mirror.dashboard.config import DashboardConfig


def config(request: Request) -> DashboardConfig:
    found: DashboardConfig = request.app.state.config
    return found


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A server-rendered page; `nav` marks the section it belongs to in the header."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def not_found(request: Request, what: str) -> Response:
    """404 as a page for people, as JSON under /api/."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": what}, status_code=404)
    return page(request, "error.html", status_code=404, nav="", title="not found", message=what)
