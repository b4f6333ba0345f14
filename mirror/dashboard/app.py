"""The dashboard as one Starlette application: routes of every view, templates, static
assets shipped in the package (no build step), the sampler running for the app's lifetime,
and the token check when one is set.

Read-only by construction: every route answers GET (and HEAD) only, and nothing here writes
to the state directory, the journal, the span store or the runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from mirror.dashboard.auth import TokenRequired
from mirror.dashboard.config import DashboardConfig
from mirror.dashboard.format import FILTERS
from mirror.dashboard.sampler import Sampler
from mirror.dashboard.views import drills, events, failovers, topology, traces

PACKAGE = "mirror.dashboard"


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
    )
    env.filters.update(FILTERS)
    return Jinja2Templates(env=env)


def create_app(config: DashboardConfig, sampler: Sampler | None = None) -> Starlette:
    sampler = sampler or Sampler(config.state_dir)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler.run)
            yield
            tg.cancel_scope.cancel()

    static = StaticFiles(packages=[(PACKAGE, "static")])
    app = Starlette(
        routes=[
            *topology.ROUTES,
            *events.ROUTES,
            *traces.ROUTES,
            *failovers.ROUTES,
            *drills.ROUTES,
            Mount("/static", static, name="static"),
        ],
        middleware=[Middleware(TokenRequired, token=config.token)] if config.token else [],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.sampler = sampler
    app.state.templates = templates()
    return app
