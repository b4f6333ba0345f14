// The topology map (/): regions with their brokers' leader and ISR health, the flows
// between them with rate, lag and latency, WAN links with their faults, and two charts
// over every flow (lag in records, throughput), redrawn from each live sample.
"use strict";

(() => {
  const { el, formatNumber } = window.dashboard;

  function brokerLine(broker) {
    const isr = broker.out_of_isr
      ? el("span", { class: "error" }, `${broker.out_of_isr} replicas out of ISR`)
      : el("span", { class: "ok" }, "in sync");
    return el(
      "li",
      { class: "broker" },
      el("span", {}, `broker ${broker.id} `, el("span", { class: "muted mono" }, broker.address)),
      el("span", {}, `leads ${broker.leads} · `, isr),
    );
  }

  function regionCard(name, region, epoch) {
    const health = region.health || { reachable: false, error: "not asked yet", brokers: [] };
    const role = region.role || "no role";
    const card = el(
      "div",
      { class: `region ${region.role}`, "data-region": name },
      el(
        "h2",
        {},
        name,
        el("span", { class: `badge ${region.role}` }, region.role === "primary" ? `primary · epoch ${epoch}` : role),
      ),
      el(
        "div",
        { class: "facts" },
        `brokers ${region.brokers_running}/${region.brokers} running`,
        region.controllers ? ` · controllers ${region.controllers_running}/${region.controllers}` : "",
        region.restarts ? ` · ${region.restarts} restarts` : "",
        ` · ${region.bootstrap}`,
      ),
    );
    if (!health.reachable) {
      card.append(el("p", { class: "error" }, `unreachable: ${health.error}`));
      return card;
    }
    card.append(el("ul", { class: "brokers" }, ...health.brokers.map(brokerLine)));
    const problems = [];
    if (health.under_replicated) problems.push(`${health.under_replicated} under-replicated`);
    if (health.offline) problems.push(`${health.offline} offline`);
    card.append(
      el(
        "div",
        { class: "facts" },
        `${health.partitions} partitions · `,
        problems.length ? el("span", { class: "error" }, problems.join(", ")) : el("span", { class: "ok" }, "all in sync"),
      ),
    );
    return card;
  }

  function latency(flow) {
    if (flow.p50_ms === null && flow.p99_ms === null) return el("span", { class: "muted" }, "no data");
    return `p50 ${formatNumber(flow.p50_ms, 1)} ms · p99 ${formatNumber(flow.p99_ms, 1)} ms`;
  }

  function flowCard(flow) {
    return el(
      "div",
      { class: `flow ${flow.state}`, "data-flow": flow.id },
      el(
        "div",
        { class: "arrow" },
        el("a", { href: `/flows/${flow.id}` }, `${flow.source} → ${flow.target}`),
        " ",
        el("span", { class: `badge ${flow.state}` }, flow.state),
      ),
      el(
        "dl",
        {},
        el("dt", {}, "rate"),
        el("dd", { class: "rate" }, `${formatNumber(flow.records_per_s, 1)} records/s`),
        el("dt", {}, "lag"),
        el("dd", { class: "lag" }, `${formatNumber(flow.lag_records)} records · ${formatNumber(flow.lag_ms / 1000, 2)} s`),
        el("dt", {}, "latency"),
        el("dd", {}, latency(flow)),
        el("dt", {}, "copied"),
        el("dd", {}, `${formatNumber(flow.records_copied)} records`),
        el("dt", {}, "workers"),
        el("dd", {}, `${flow.workers_running}/${flow.workers} running`),
      ),
      flow.last_error ? el("p", { class: "error small" }, flow.last_error) : null,
    );
  }

  function drawMap(sample) {
    const map = document.getElementById("map");
    const names = Object.keys(sample.regions);
    const first = names.find((n) => sample.regions[n].role === "primary") || names[0];
    const rest = names.filter((n) => n !== first);
    const epoch = sample.failover.epoch;
    const column = (list) => el("div", { class: "column" }, ...list.map((n) => regionCard(n, sample.regions[n], epoch)));
    const flows = el("div", { class: "flows" }, ...sample.flows.map(flowCard));
    if (!sample.flows.length) flows.append(el("p", { class: "muted" }, "no flow runs"));
    map.replaceChildren(column(first ? [first] : []), flows, column(rest));
  }

  function drawLinks(sample) {
    const box = document.getElementById("links");
    if (!sample.links.length) {
      box.replaceChildren(el("p", { class: "muted" }, "none: the regions reach each other directly (no [links] in the topology)"));
      return;
    }
    const rows = sample.links.map((link) => {
      const state = link.enabled === null ? "unknown" : link.enabled ? "up" : "cut";
      const toxics = (link.toxics || []).map((t) =>
        el(
          "span",
          { class: `badge ${t.fault ? "fault" : "condition"}`, title: t.name },
          `${t.fault ? "fault" : "link"}: ${t.type} ${t.stream} ${JSON.stringify(t.attributes)}`,
        ));
      return el(
        "tr",
        { "data-link": link.name },
        el("td", {}, link.name),
        el("td", {}, el("span", { class: `badge ${state}` }, state)),
        el("td", {}, ...(toxics.length ? toxics : [el("span", { class: "muted" }, "no toxics")])),
      );
    });
    box.replaceChildren(
      el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "direction"), el("th", {}, "state"), el("th", {}, "toxics: the link's conditions, and faults added to it"))), el("tbody", {}, ...rows)),
    );
  }

  function drawProcesses(sample) {
    const rows = sample.processes.map((p) =>
      el(
        "tr",
        {},
        el("td", {}, p.name),
        el("td", {}, p.kind),
        el("td", {}, el("span", { class: `badge ${p.state === "running" ? "running" : "error"}` }, p.state)),
        el("td", { class: "num" }, p.pid),
        el("td", { class: "mono" }, p.address || ""),
        el("td", { class: "num" }, p.restarts),
        el("td", { class: "small muted" }, p.last_exit || ""),
      ),
    );
    document.getElementById("processes").replaceChildren(
      el(
        "table",
        { class: "grid" },
        el("thead", {}, el("tr", {}, ...["name", "kind", "state", "pid", "address", "restarts", "last exit"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows),
      ),
    );
  }

  // One chart per figure over every flow; rebuilt when the set of flows changes.
  function drawCharts() {
    const series = window.dashboard.series;
    const flows = Object.keys(series.flows);
    for (const [key, figure, id] of [["lag", "lag_records", "chart-lag"], ["rate", "records_per_s", "chart-rate"]]) {
      const data = [series.t, ...flows.map((f) => series.flows[f][figure])];
      const chart = window.dashboard.charts[key];
      if (chart && chart.series.length === flows.length + 1) {
        chart.setData(data);
        continue;
      }
      if (chart) chart.destroy();
      const element = document.getElementById(id);
      element.replaceChildren();
      window.dashboard.charts[key] = window.dashboard.lineChart(element, flows.map((f) => ({ label: f })), { data });
    }
  }

  window.dashboard.onSample((sample) => {
    const problem = document.getElementById("problem");
    problem.hidden = !sample.error;
    problem.textContent = sample.error || "";
    if (sample.error) return;
    document.getElementById("topology-name").textContent = sample.topology;
    drawMap(sample);
    drawLinks(sample);
    drawProcesses(sample);
    drawCharts();
  });
})();
