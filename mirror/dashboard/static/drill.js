// A drill run's timeline: each flow's mirror lag (records) over the run, with a vertical
// line at each step of the drill (faults, failovers), red where the step failed.
"use strict";

(() => {
  const { lag, steps } = JSON.parse(document.getElementById("drill-data").textContent);
  const flows = Object.keys(lag);
  if (!flows.length) {
    document.getElementById("chart-drill").hidden = true;
    document.getElementById("drill-no-lag").hidden = false;
    return;
  }
  // Flows sampled at the same moments share an x; any other moment is a gap for the rest.
  const times = [...new Set(flows.flatMap((f) => lag[f].map((p) => p.t_s)))].sort((a, b) => a - b);
  const data = [
    times,
    ...flows.map((f) => {
      const at = new Map(lag[f].map((p) => [p.t_s, p.lag_records]));
      return times.map((t) => (at.has(t) ? at.get(t) : null));
    }),
  ];

  const stepLines = {
    hooks: {
      draw: [
        (u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
          ctx.textAlign = "left"; // uPlot leaves the axes' alignment behind
          ctx.textBaseline = "alphabetic";
          steps.forEach((step, i) => {
            const x = Math.round(u.valToPos(step.at_s, "x", true));
            ctx.strokeStyle = step.ok ? "#9ca3af" : "#b91c1c";
            ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillStyle = step.ok ? "#374151" : "#b91c1c";
            const row = (i % 4) + 1;
            ctx.fillText(step.description, x + 4 * devicePixelRatio, u.bbox.top + row * 13 * devicePixelRatio);
          });
          ctx.restore();
        },
      ],
    },
  };

  window.dashboard.charts.drill = window.dashboard.lineChart(
    document.getElementById("chart-drill"),
    flows.map((f) => ({ label: f })),
    { data, time: false, height: 260, plugins: [stepLines] },
  );
})();
