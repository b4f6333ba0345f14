"""Drill runs (`/drills`) and one run's report (`/drills/RUN`): its timeline of faults and
steps over the flows' lag, anomalies, invariants, failovers and first findings.

Runs are read from the runs directory (`regionlink drill run --runs-dir`, default
`.regionlink/drills`) exactly as `regionlink drill report` reads them: `run.json` for the
steps and headline, the verdict in `history.db`. A run is named by its directory's name
only — never a path — so a URL cannot reach outside the runs directory. (The dashboard sits
at the command line's level, above `chaos`, as `regionlink drill` does.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos.drill.runs import HISTORY_FILE, RUN_FILE, load_run
from chaos.report import load_verdict, verdict_json
from mirror.dashboard.views.common import config, not_found, page

LIST_LIMIT = 100


def run_dirs(runs_dir: Path, limit: int = LIST_LIMIT) -> list[Path]:
    """The runs in `runs_dir`, newest first."""
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir() if (p / RUN_FILE).is_file()]
    return sorted(found, key=lambda p: (p / RUN_FILE).stat().st_mtime, reverse=True)[:limit]


def run_dir(runs_dir: Path, name: str) -> Path | None:
    """The run called `name` in `runs_dir`, if there is one."""
    if not name or name != Path(name).name or name.startswith("."):
        return None
    path = runs_dir / name
    return path if (path / RUN_FILE).is_file() else None


def summary(path: Path) -> dict[str, Any]:
    """A run as the list shows it: name, drill, seed, outcome and headline figures."""
    data = load_run(path)
    return {
        "run": path.name,
        "drill": data.get("drill"),
        "seed": data.get("seed"),
        "passed": data.get("passed"),
        "error": data.get("error", ""),
        "records_acked": data.get("records_acked"),
        "rpo_records": data.get("rpo_records"),
        "rto_seconds": data.get("rto_seconds"),
        "findings": sum((data.get("anomalies") or {}).values()),
        "finished_s": (path / RUN_FILE).stat().st_mtime,
    }


def report(path: Path) -> dict[str, Any]:
    """`drill report --json`, with the verdict from history.db when the run has one."""
    data = load_run(path)
    history = path / HISTORY_FILE
    if history.exists() and not data.get("error"):
        data.update(verdict_json(load_verdict(history)))
    return {"run": path.name, **data}


async def drills(request: Request) -> Response:
    runs_dir = config(request).runs_dir
    found = await anyio.to_thread.run_sync(lambda: [summary(p) for p in run_dirs(runs_dir)])
    return page(request, "drills.html", nav="drills", title="drills", runs=found, runs_dir=runs_dir)


async def _report(request: Request) -> dict[str, Any] | None:
    path = run_dir(config(request).runs_dir, request.path_params["run"])
    return None if path is None else await anyio.to_thread.run_sync(report, path)


async def drill(request: Request) -> Response:
    found = await _report(request)
    if found is None:
        return not_found(request, f"no drill run {request.path_params['run']}")
    return page(request, "drill.html", nav="drills", title=f"drill {found['run']}", run=found)


async def api_drills(request: Request) -> Response:
    runs_dir = config(request).runs_dir
    found = await anyio.to_thread.run_sync(lambda: [summary(p) for p in run_dirs(runs_dir)])
    return JSONResponse({"runs": found})


async def api_drill(request: Request) -> Response:
    found = await _report(request)
    if found is None:
        return not_found(request, f"no drill run {request.path_params['run']}")
    return JSONResponse(found)


ROUTES = [
    Route("/drills", drills),
    Route("/drills/{run}", drill),
    Route("/api/drills", api_drills),
    Route("/api/drills/{run}", api_drill),
]
