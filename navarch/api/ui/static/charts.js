// Small SVG charts: a line chart and a stacked-area chart over time, with axes and a legend.
// Series are {name, color, points: [{time: Date, value: number}]}; every series of a stacked
// chart shares the same times.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 44, right: 12, top: 10, bottom: 26 };

function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    element.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (typeof child === "string") {
      element.appendChild(document.createTextNode(child));
    } else if (child) {
      element.appendChild(child);
    }
  }
  return element;
}

function niceStep(range, count) {
  const raw = range / Math.max(count, 1);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const scaled = raw / power;
  const step = scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10;
  return Math.max(step * power, 1);
}

function timeText(date, spanMs) {
  const iso = date.toISOString();
  if (spanMs > 2 * 86400000) {
    return iso.slice(5, 10);
  }
  return spanMs > 20 * 60000 ? iso.slice(11, 16) : iso.slice(11, 19);
}

function frame(times, top, title) {
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const tSpan = t1 - t0 || 1;
  const step = niceStep(top, 4);
  const yMax = Math.max(step, Math.ceil(top / step) * step);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - t0) / tSpan) * plotW;
  const y = (v) => PAD.top + plotH - (v / yMax) * plotH;
  const svg = s("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-label": title,
  });
  const axes = s("g", { class: "axes" });
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    axes.appendChild(s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    axes.appendChild(s("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" },
      Number(v).toLocaleString("en-US")));
  }
  const ticks = 5;
  for (let i = 0; i <= ticks; i += 1) {
    const t = t0 + (tSpan * i) / ticks;
    const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
    axes.appendChild(s("text", { x: x(t), y: HEIGHT - 8, "text-anchor": anchor },
      timeText(new Date(t), tSpan)));
  }
  axes.appendChild(s("line", {
    x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "axis",
  }));
  svg.appendChild(axes);
  return { svg, x, y };
}

function legend(series) {
  return h("ul", { class: "legend" }, series.map((one) => {
    const swatch = h("span", { class: "swatch swatch-" + one.color });
    return h("li", {}, swatch, one.name);
  }));
}

// A single reading draws as a flat band across the chart rather than as nothing.
function usable(series) {
  return series.filter((one) => one.points.length > 0).map((one) => (
    one.points.length > 1 ? one : {
      ...one,
      points: [one.points[0], { time: new Date(one.points[0].time.getTime() + 1), value: one.points[0].value }],
    }));
}

function emptyChart(title) {
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title),
    h("p", { class: "empty" }, "No history yet."));
}

// Lines, each in its colour class (`stroke-<color>`); `dashed` series draw dashed.
export function lineChart(title, series) {
  const shown = usable(series);
  if (!shown.length) {
    return emptyChart(title);
  }
  const times = shown.flatMap((one) => one.points.map((p) => p.time.getTime()));
  const top = Math.max(1, ...shown.flatMap((one) => one.points.map((p) => p.value)));
  const { svg, x, y } = frame(times, top, title);
  // The first series draws last, on top of any it coincides with.
  for (const one of [...shown].reverse()) {
    const d = one.points.map((p, i) => `${i ? "L" : "M"}${x(p.time.getTime()).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
    svg.appendChild(s("path", {
      d, class: `line stroke-${one.color}${one.dashed ? " dashed" : ""}`,
    }, s("title", {}, one.name)));
  }
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg, legend(shown));
}

// Areas stacked bottom-up in the order given, each in its colour class (`fill-<color>`).
export function stackedArea(title, series) {
  const shown = usable(series);
  if (!shown.length) {
    return emptyChart(title);
  }
  const times = shown[0].points.map((p) => p.time.getTime());
  const totals = times.map((_, i) => shown.reduce((sum, one) => sum + (one.points[i]?.value || 0), 0));
  const { svg, x, y } = frame(times, Math.max(1, ...totals), title);
  const base = times.map(() => 0);
  for (const one of shown) {
    const upper = times.map((_, i) => base[i] + (one.points[i]?.value || 0));
    if (upper.some((v, i) => v !== base[i])) {
      const top = times.map((t, i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(upper[i]).toFixed(1)}`).join("");
      const bottom = times.map((t, i) => `L${x(t).toFixed(1)},${y(base[i]).toFixed(1)}`).reverse().join("");
      svg.appendChild(s("path", { d: `${top}${bottom}Z`, class: `area fill-${one.color}` },
        s("title", {}, one.name)));
    }
    upper.forEach((v, i) => { base[i] = v; });
  }
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg, legend(shown));
}
