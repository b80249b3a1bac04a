// Charts: bars (stacked or not) and lines, drawn as SVG with s(); no library.
//
// A chart is drawn at the width its box has (a ResizeObserver redraws it when that changes),
// so text stays at its real size on a phone as on a wide screen. Colours and strokes are
// classes (`.series-1`...), never style attributes: the CSP allows no inline style.
//
// For people who do not see it: the SVG is one image (`role="img"`) whose label says what it
// shows and its main figures; every bar and point has a <title> (the tooltip on hover); and
// "Show the numbers" opens the same data as a table.

import { h, s, table, uid } from "./dom.js";

const HEIGHT = 200;
const MARGIN = { top: 10, right: 12, bottom: 26, left: 8 };
const CHAR = 6.6; // the width of a digit of the 11-px axis text, near enough to lay out labels

/**
 * A bar chart. `labels`: one per bar (days, names); `series`: `[{name, values}]`, stacked
 * when there are several; `format(value)`: a value as text (titles, the table), `axis(value)`
 * on the axis (shorter: its unit is in the chart's heading); `tick(label)`: a label under the
 * plot; `summary`: the sentence that labels the image; `signal`: stops the redrawing.
 */
export function barChart(spec) {
  return chart({ ...defaults(spec), draw: drawBars });
}

/** A line chart: one line per series; a null value leaves a gap in its line. */
export function lineChart(spec) {
  return chart({ ...defaults(spec), draw: drawLines });
}

function defaults(spec) {
  return { tick: (label) => label, axis: spec.format, ...spec };
}

/** The legend of a chart's series, as swatches of their colours. */
export function legend(series) {
  return h(
    "ul",
    { class: "legend chart-legend" },
    series.map((item, index) =>
      h("li", {}, h("span", { class: `swatch series-${index + 1}`, "aria-hidden": "true" }), item.name),
    ),
  );
}

function chart(spec) {
  const box = h("div", { class: "chart-box" });
  const data = h(
    "details",
    { class: "chart-data" },
    h("summary", {}, "Show the numbers"),
    scrollable(table(
      [
        { label: "", cell: (row) => row.label },
        ...spec.series.map((item, index) => ({
          label: item.name,
          class: "num",
          cell: (row) => (row.values[index] === null ? "—" : spec.format(row.values[index])),
        })),
      ],
      spec.labels.map((label, i) => ({ label, values: spec.series.map((item) => item.values[i]) })),
    )),
  );
  let width = 0;
  const redraw = () => {
    const now = Math.max(260, Math.floor(box.clientWidth));
    if (now === width) return;
    width = now;
    box.replaceChildren(frame(spec, width));
  };
  const observer = new ResizeObserver(redraw);
  observer.observe(box);
  if (spec.signal) spec.signal.addEventListener("abort", () => observer.disconnect());
  box.append(frame(spec, 640)); // until it is laid out, and for a box never measured
  return h("div", { class: "chart-wrap" }, box, spec.series.length > 1 ? legend(spec.series) : null, data);
}

/** A table that scrolls in its box, reachable by keyboard so it can be scrolled. */
function scrollable(wrap) {
  wrap.tabIndex = 0;
  wrap.setAttribute("role", "region");
  wrap.setAttribute("aria-label", "The chart's numbers");
  return wrap;
}

function frame(spec, width) {
  const titleId = uid("chart");
  const max = Math.max(0, ...spec.series.flatMap((item) => item.values.filter((v) => v !== null)));
  const stackedMax =
    spec.draw === drawBars
      ? Math.max(0, ...spec.labels.map((_, i) => spec.series.reduce((sum, item) => sum + (item.values[i] || 0), 0)))
      : max;
  const ticks = niceTicks(stackedMax);
  const left = MARGIN.left + Math.max(...ticks.map((t) => spec.axis(t).length)) * CHAR + 6;
  const area = {
    x: left,
    y: MARGIN.top,
    width: width - left - MARGIN.right,
    height: HEIGHT - MARGIN.top - MARGIN.bottom,
    top: ticks[ticks.length - 1] || 1,
  };
  const y = (value) => area.y + area.height - (value / area.top) * area.height;
  return s(
    "svg",
    {
      class: "chart",
      width,
      height: HEIGHT,
      viewBox: `0 0 ${width} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": titleId,
    },
    s("title", { id: titleId }, spec.summary),
    ticks.map((t) => [
      s("line", { class: t === 0 ? "axis" : "grid", x1: area.x, x2: area.x + area.width, y1: y(t), y2: y(t) }),
      s("text", { x: area.x - 6, y: y(t) + 4, "text-anchor": "end" }, spec.axis(t)),
    ]),
    xLabels(spec, area),
    spec.draw(spec, area, y),
  );
}

/** The labels under the plot, as many as fit without touching. */
function xLabels(spec, area) {
  const n = spec.labels.length;
  if (!n) return null;
  const band = area.width / n;
  const widest = Math.max(...spec.labels.map((label) => spec.tick(label).length)) * CHAR + 10;
  const every = Math.max(1, Math.ceil(widest / band));
  const shown = [];
  for (let i = n - 1; i >= 0; i -= every) shown.push(i); // the newest label always shows
  return shown.map((i) =>
    s(
      "text",
      { x: area.x + band * (i + 0.5), y: area.y + area.height + 17, "text-anchor": "middle" },
      spec.tick(spec.labels[i]),
    ),
  );
}

function drawBars(spec, area, y) {
  const band = area.width / Math.max(1, spec.labels.length);
  const barWidth = Math.max(1, Math.min(36, band * 0.72));
  return spec.labels.map((label, i) => {
    let base = 0;
    const x = area.x + band * i + (band - barWidth) / 2;
    return spec.series.map((item, index) => {
      const value = item.values[i] || 0;
      if (value <= 0) return null;
      const top = y(base + value);
      const height = Math.max(1, y(base) - top);
      base += value;
      const name = spec.series.length > 1 ? ` · ${item.name}` : "";
      return s(
        "rect",
        { class: `bar series-${index + 1}`, x, y: top, width: barWidth, height, rx: Math.min(2, barWidth / 4) },
        s("title", {}, `${label}${name}: ${spec.format(value)}`),
      );
    });
  });
}

function drawLines(spec, area, y) {
  const band = area.width / Math.max(1, spec.labels.length);
  const x = (i) => area.x + band * (i + 0.5);
  return spec.series.map((item, index) => {
    const runs = [];
    let run = [];
    item.values.forEach((value, i) => {
      if (value === null || value === undefined) {
        if (run.length) runs.push(run);
        run = [];
      } else {
        run.push([x(i), y(value)]);
      }
    });
    if (run.length) runs.push(run);
    const tone = `series-${index + 1}`;
    return s(
      "g",
      { class: `line ${tone}` },
      runs.map((points) => s("polyline", { points: points.map((p) => p.join(",")).join(" ") })),
      item.values.map((value, i) =>
        value === null || value === undefined
          ? null
          : s("circle", { cx: x(i), cy: y(value), r: 3 }, s("title", {}, `${spec.labels[i]} · ${item.name}: ${spec.format(value)}`)),
      ),
    );
  });
}

/** 0 and up to 4 round steps covering `max` (1, 2, 2.5 or 5 times a power of ten). */
export function niceTicks(max) {
  if (!(max > 0)) return [0, 1];
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
  const ticks = [];
  for (let value = 0; value < max + step * 0.999; value += step) ticks.push(Number(value.toPrecision(12)));
  return ticks;
}
