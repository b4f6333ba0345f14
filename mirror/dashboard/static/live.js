// The live feed every page shares: one EventSource on /api/events, the series kept for the
// charts (the server's history, then one point per sample), the header's primary and
// epoch, and a reload of journal pages when a failover operation moves on.
// Pages register with dashboard.onSample(fn); charts are uPlot instances in dashboard.charts.
"use strict";

(() => {
  const PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2"];

  const dashboard = (window.dashboard = {
    series: { t: [], flows: {} },
    capacity: 900,
    latest: null,
    charts: {},
    listeners: [],
    onSample(fn) {
      this.listeners.push(fn);
      if (this.latest) fn(this.latest);
    },
  });

  // A sample's figures (flow -> figure -> value) onto the kept columns, as the server's
  // FlowSeries does: every flow gets a value (or null) at every time.
  function append(sample) {
    const series = dashboard.series;
    const last = series.t[series.t.length - 1];
    if (last !== undefined && sample.t <= last) return; // already in the history
    const figures = sample.figures || {};
    for (const flow of Object.keys(figures)) {
      if (!series.flows[flow]) {
        series.flows[flow] = {};
        for (const name of Object.keys(figures[flow])) {
          series.flows[flow][name] = series.t.map(() => null);
        }
      }
    }
    series.t.push(sample.t);
    for (const [flow, columns] of Object.entries(series.flows)) {
      for (const [name, column] of Object.entries(columns)) {
        const value = figures[flow] ? figures[flow][name] : null;
        column.push(value === undefined ? null : value);
      }
    }
    if (series.t.length > dashboard.capacity) {
      series.t.shift();
      for (const columns of Object.values(series.flows)) {
        for (const column of Object.values(columns)) column.shift();
      }
    }
  }

  function header(sample) {
    const live = document.getElementById("live");
    if (!live) return;
    if (sample.error) {
      live.className = "live down";
      live.textContent = sample.error;
      return;
    }
    live.className = "live up";
    live.textContent =
      `${sample.topology} · primary ${sample.failover.primary || "none"} ` +
      `at epoch ${sample.failover.epoch} · live`;
  }

  // Journal pages carry the newest operation's signature they were rendered with.
  function reloadIfJournalMoved(sample) {
    const watch = document.getElementById("journal-watch");
    if (!watch || sample.error) return;
    const now = sample.journal ? sample.journal.signature : "";
    if (now !== watch.dataset.journal) window.location.reload();
  }

  function notify() {
    for (const fn of dashboard.listeners) fn(dashboard.latest);
  }

  dashboard.onSample(header);
  dashboard.onSample(reloadIfJournalMoved);

  const source = new EventSource("/api/events");
  source.addEventListener("history", (event) => {
    const data = JSON.parse(event.data);
    dashboard.series = data.series;
    dashboard.capacity = data.capacity;
    if (data.latest) {
      dashboard.latest = data.latest;
      notify();
    }
  });
  source.addEventListener("sample", (event) => {
    const sample = JSON.parse(event.data);
    append(sample);
    dashboard.latest = sample;
    notify();
  });
  source.onerror = () => {
    const live = document.getElementById("live");
    if (live) {
      live.className = "live down";
      live.textContent = "dashboard unreachable: reconnecting…";
    }
  };

  // A time-series line chart in `element`: one line per entry of `lines` ({label}), x in
  // seconds since the epoch (or plain seconds with {time: false}).
  dashboard.lineChart = (element, lines, options = {}) => {
    const chart = new uPlot(
      {
        width: Math.max(element.clientWidth, 300),
        height: options.height || 200,
        scales: { x: { time: options.time !== false } },
        axes: [{}, { size: 56 }],
        series: [
          {},
          ...lines.map((line, i) => ({
            label: line.label,
            stroke: line.stroke || PALETTE[i % PALETTE.length],
            width: 2,
            points: { show: false },
          })),
        ],
        plugins: options.plugins || [],
      },
      options.data || [[], ...lines.map(() => [])],
      element,
    );
    new ResizeObserver(() => chart.setSize({ width: element.clientWidth, height: chart.height }))
      .observe(element);
    return chart;
  };

  dashboard.formatNumber = (value, digits = 0) =>
    value === null || value === undefined
      ? "—"
      : Number(value).toLocaleString("en-US", { maximumFractionDigits: digits });

  dashboard.el = (tag, attributes = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };
})();
