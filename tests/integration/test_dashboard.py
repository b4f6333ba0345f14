"""`regionlink dashboard` in headless Chromium against a running two-region topology (issue 13).

One topology (topologies/active-passive.toml under `regionlink up`) and one dashboard serve
the whole module; Playwright drives Debian's chromium (no browser download) and every check
is on what a person sees: both regions and the flow on the map, the lag chart gaining points
while an application writes, a record produced in us-east by the instrumented application
found by its key, with a waterfall of every hop from us-east's producer to eu-west's
consumer, and a switchover appearing on the failover timeline without a reload.

Screenshots (1280x800 PNGs) go to $REGIONLINK_SCREENSHOTS when set — `make screenshots`
points it at docs/img — else to the test's temporary directory.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from broker.spanstore import SPANS_FILE, SpanStore
from tests.integration.dashboard_harness import Dashboard, traced_app
from tests.integration.failover_harness import (
    ACTIVE_PASSIVE,
    AppProducer,
    Deployment,
    create_orders,
)
from tests.integration.mirror_harness import create_topic, end_offsets, wait_until

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
MAX_SCREENSHOT_BYTES = 200_000
UPDATE_TIMEOUT_MS = 20_000
TRACED_TOPIC = "traced-orders"
# A record's path, as its waterfall lists it: (region, span kind) of each hop.
HOPS = [
    ("us-east", "producer"),  # the application's send
    ("us-east", "server"),  # us-east's broker: Produce
    ("us-east", "client"),  # the mirror worker (it runs in its source region)
    ("eu-west", "server"),  # eu-west's broker: LinkAppend
    ("eu-west", "consumer"),  # the application's process, continuing the trace
]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("dashboard")
    topology = root / "active-passive.toml"
    topology.write_text(ACTIVE_PASSIVE.read_text())
    deployment = Deployment(root / "state", topology)
    try:
        deployment.up()
        create_orders(deployment)
        yield deployment
    finally:
        deployment.down()


@pytest.fixture(scope="module")
def dashboard(deployed: Deployment) -> Iterator[Dashboard]:
    served = Dashboard(deployed.state_dir)
    try:
        yield served
    finally:
        assert served.stop() == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), (
        "chromium is required (apt-get install -y chromium); make test installs it"
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    """A tab on the dashboard that fails the test on any script error or failed request."""
    context = browser.new_context(viewport=VIEWPORT, base_url=dashboard.url)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    opened.on("console", console)
    try:
        yield opened
    finally:
        context.close()
    assert not problems, problems


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("REGIONLINK_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def shoot(page: Page, directory: Path, name: str) -> Path:
    path = directory / name
    page.screenshot(path=str(path))
    size = path.stat().st_size
    assert size <= MAX_SCREENSHOT_BYTES, f"{path} is {size} bytes"
    return path


def chart_points(page: Page, chart: str) -> int:
    """How many samples the chart `name` (a uPlot instance) draws now."""
    found = page.evaluate("name => window.dashboard.charts[name]?.data[0].length ?? 0", chart)
    return int(found)


def test_the_map_shows_both_regions_and_the_flow(page: Page) -> None:
    page.goto("/")
    us, eu = (
        page.locator('.region[data-region="us-east"]'),
        page.locator('.region[data-region="eu-west"]'),
    )
    expect(us).to_contain_text("primary · epoch 0", timeout=UPDATE_TIMEOUT_MS)
    expect(us).to_contain_text("in sync")
    expect(eu).to_contain_text("standby")
    flow = page.locator('.flow[data-flow="us-east:eu-west"]')
    expect(flow).to_contain_text("us-east → eu-west")
    expect(flow).to_contain_text("running")
    expect(page.locator("#live")).to_contain_text("primary us-east at epoch 0")
    flow.get_by_role("link", name="us-east → eu-west").click()
    expect(page).to_have_url(re.compile(r"/flows/us-east:eu-west$"))


def test_the_lag_chart_gains_points_while_records_flow(
    page: Page, deployed: Deployment, screenshots: Path
) -> None:
    app = AppProducer(deployed, "us-east", prefix="flow", rate_per_s=200).start()
    try:
        page.goto("/flows/us-east:eu-west")
        page.wait_for_function("() => window.dashboard.charts.lag !== undefined")
        before = chart_points(page, "lag")
        page.wait_for_function(
            "n => window.dashboard.charts.lag.data[0].length >= n",
            arg=before + 3,
            timeout=UPDATE_TIMEOUT_MS,
        )
        # The records the app writes show as throughput, and the lag line has values (not
        # gaps) at the newest points.
        page.wait_for_function(
            "() => window.dashboard.charts.rate.data[1].some(v => v > 0)", timeout=UPDATE_TIMEOUT_MS
        )
        newest = page.evaluate("() => window.dashboard.charts.lag.data[1].slice(-3)")
        assert all(isinstance(v, int | float) for v in newest), newest
        expect(page.locator("#figures")).to_contain_text("/s")
        shoot(page, screenshots, "dashboard-flow.png")
        page.goto("/")
        expect(page.locator('.flow[data-flow="us-east:eu-west"] .rate')).not_to_have_text(
            re.compile(r"^0 records/s"), timeout=UPDATE_TIMEOUT_MS
        )
        page.wait_for_function("() => window.dashboard.charts.rate.data[1].some(v => v > 0)")
        shoot(page, screenshots, "dashboard-topology.png")
    finally:
        assert app.stop(), "the app acked nothing"


def test_a_traced_record_is_found_by_key_and_its_waterfall_crosses_both_regions(
    page: Page, deployed: Deployment, screenshots: Path
) -> None:
    us, eu = deployed.bootstraps["us-east"], deployed.bootstraps["eu-west"]
    create_topic(us, TRACED_TOPIC, 1)
    wait_until(lambda: bool(end_offsets(eu, TRACED_TOPIC)), 30, "the mirror topic in eu-west")
    prefix = f"traced-{secrets.token_hex(4)}-"
    (key,) = traced_app(deployed.state_dir, "produce", us, TRACED_TOPIC, "1", "us-east", prefix)
    assert traced_app(deployed.state_dir, "consume", eu, TRACED_TOPIC, "1", "eu-west") == [key]
    store = SpanStore(deployed.state_dir / SPANS_FILE)

    def every_hop_stored() -> bool:  # brokers and workers export their spans every 5 s
        found = store.search(key=key)
        return len(found) == 1 and len(store.trace(found[0].trace_id)) >= len(HOPS)

    wait_until(every_hop_stored, 30, "the spans of every hop")

    page.goto(f"/traces?key={key}")
    results = page.locator("#traces tbody tr")
    expect(results).to_have_count(1)
    expect(results).to_contain_text("eu-west, us-east")
    trace_id = str(results.get_by_role("link").first.text_content())
    results.get_by_role("link", name=trace_id).click()
    expect(page).to_have_url(re.compile(f"/traces/{trace_id}$"))

    spans = page.locator("#waterfall tr.span")
    shown = [
        (
            str(spans.nth(i).get_attribute("data-region")),
            str(spans.nth(i).locator(".kind").text_content()),
        )
        for i in range(spans.count())
    ]
    assert shown == HOPS, shown  # producer → broker → mirror → target broker → consumer
    expect(spans.first).to_contain_text("send traced-orders")
    expect(spans.last).to_contain_text("process traced-orders")
    for i in range(1, spans.count()):
        expect(spans.nth(i).locator(".hop")).to_contain_text(re.compile(r"\+[\d.,]+ (ms|µs)"))
    # The brokers' and the mirror's spans belong to their batches' traces and link into this
    # one: each offers its own trace to follow.
    own = spans.nth(1).get_by_role("link", name=re.compile("^own "))
    expect(own).to_be_visible()
    expect(page.locator("main")).to_contain_text("regions in order: us-east → eu-west")
    shoot(page, screenshots, "dashboard-trace.png")
    own.click()
    expect(page).to_have_url(re.compile(r"/traces/[0-9a-f]{32}$"))
    expect(page.locator("#waterfall")).to_contain_text(trace_id[:8])  # the link back


def test_a_switchover_appears_on_the_failover_timeline(
    page: Page, deployed: Deployment, screenshots: Path
) -> None:
    page.goto("/failovers")
    expect(page.locator("#no-operations")).to_be_visible()
    report = deployed.operate("switchover", "--to", "eu-west")
    assert report["outcome"] == "done", report

    # The open page reloads itself when the journal moves on.
    operation = page.locator("#operation-1")
    expect(operation).to_contain_text("switchover us-east → eu-west", timeout=UPDATE_TIMEOUT_MS)
    expect(operation.locator(".badge.outcome-done")).to_have_text("done", timeout=UPDATE_TIMEOUT_MS)
    expect(operation).to_contain_text("RPO 0 records")
    expect(operation.locator("tr.step")).to_have_count(len(report["steps"]))
    expect(page.locator("#live")).to_contain_text(
        f"primary eu-west at epoch {report['epoch']}", timeout=UPDATE_TIMEOUT_MS
    )
    shoot(page, screenshots, "dashboard-failovers.png")

    operation.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/failovers/1$"))
    expect(page.locator("main")).to_contain_text("Loss manifest")
    page.goto("/")
    expect(page.locator('.region[data-region="eu-west"]')).to_contain_text(
        f"primary · epoch {report['epoch']}", timeout=UPDATE_TIMEOUT_MS
    )
    expect(page.locator('.flow[data-flow="eu-west:us-east"]')).to_be_visible()


def _get(
    url: str, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> http.client.HTTPResponse:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_a_token_guards_the_dashboard_and_only_reading_is_served(deployed: Deployment) -> None:
    guarded = Dashboard(deployed.state_dir, "--token", "s3cret")
    try:
        assert _get(guarded.url, "/api/status").status == 401
        assert _get(guarded.url, "/?token=wrong").status == 401
        welcomed = _get(guarded.url, "/failovers?token=s3cret")
        assert welcomed.status == 303 and welcomed.getheader("location") == "/failovers"
        cookie = welcomed.getheader("set-cookie", "").split(";")[0]
        assert _get(guarded.url, "/failovers", {"Cookie": cookie}).status == 200
        bearer = {"Authorization": "Bearer s3cret"}
        assert _get(guarded.url, "/api/status", bearer).status == 200
        assert _get(guarded.url, "/", bearer, method="POST").status == 405
    finally:
        assert guarded.stop() == 0

    # Bound beyond loopback without --token: one is generated and printed once.
    exposed = Dashboard(deployed.state_dir, listen_host="0.0.0.0")
    try:
        token = exposed.banner[0].split(":", 1)[1].strip()
        assert f"?token={token}" in exposed.banner[1], exposed.banner
        assert _get(exposed.url, "/").status == 401
        assert _get(exposed.url, "/", {"Authorization": f"Bearer {token}"}).status == 200
    finally:
        assert exposed.stop() == 0
