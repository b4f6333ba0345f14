// One flow (/flows/SOURCE:TARGET): its live figures, lag (records and seconds), throughput
// and replication latency p50/p99 over time, and its partitions by lag.
"use strict";

(() => {
  const { el, formatNumber } = window.dashboard;
  const flow = document.getElementById("flow").dataset.flow;
  const CHARTS = [
    ["lag", "chart-lag", [["lag_records", "records"]]],
    ["lag_s", "chart-lag-s", [["lag_s", "seconds"]]],
    ["rate", "chart-rate", [["records_per_s", "records/s"]]],
    ["latency", "chart-latency", [["p50_ms", "p50"], ["p99_ms", "p99"]]],
  ];

  function figure(label, value) {
    return el("div", { class: "figure" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
  }

  function drawFigures(current) {
    const box = document.getElementById("figures");
    if (!current) {
      box.replaceChildren(el("p", { class: "muted" }, "this flow does not run now (its history is kept below)"));
      return;
    }
    box.replaceChildren(
      figure("state", current.state),
      figure("lag", `${formatNumber(current.lag_records)} records`),
      figure("lag (time)", `${formatNumber(current.lag_ms / 1000, 2)} s`),
      figure("rate", `${formatNumber(current.records_per_s, 1)} /s`),
      figure("latency p50", current.p50_ms === null ? "no data" : `${formatNumber(current.p50_ms, 1)} ms`),
      figure("latency p99", current.p99_ms === null ? "no data" : `${formatNumber(current.p99_ms, 1)} ms`),
      figure("copied", formatNumber(current.records_copied)),
      figure("lost (retention)", formatNumber(current.records_lost)),
      figure("workers", `${current.workers_running}/${current.workers}`),
    );
    if (current.last_error) box.append(el("p", { class: "error" }, current.last_error));
    const rows = current.partitions.slice(0, 20).map((p) =>
      el(
        "tr",
        {},
        el("td", {}, `${p.source_topic}[${p.partition}]`),
        el("td", { class: "num" }, formatNumber(p.lag_records)),
        el("td", { class: "num" }, `${formatNumber(p.lag_ms)} ms`),
        el("td", {}, p.state || ""),
      ),
    );
    document.getElementById("partitions").replaceChildren(
      rows.length
        ? el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "partition"), el("th", { class: "num" }, "lag (records)"), el("th", { class: "num" }, "lag"), el("th", {}, "state"))), el("tbody", {}, ...rows))
        : el("p", { class: "muted" }, "no partition copied yet"),
    );
  }

  function drawCharts() {
    const series = window.dashboard.series;
    const columns = series.flows[flow];
    if (!columns) return;
    for (const [key, id, lines] of CHARTS) {
      const data = [series.t, ...lines.map(([name]) => columns[name])];
      const chart = window.dashboard.charts[key];
      if (chart) chart.setData(data);
      else window.dashboard.charts[key] = window.dashboard.lineChart(document.getElementById(id), lines.map(([, label]) => ({ label })), { data });
    }
    const latency = columns.p50_ms.some((v) => v !== null);
    document.getElementById("latency-none").hidden = latency;
  }

  window.dashboard.onSample((sample) => {
    const problem = document.getElementById("problem");
    problem.hidden = !sample.error;
    problem.textContent = sample.error || "";
    if (sample.error) return;
    drawFigures(sample.flows.find((f) => f.id === flow));
    drawCharts();
  });
})();
