// Small inline-SVG charts (no library): bars for counts per window, stacked areas for a
// history.
// Each chart redraws from scratch and records what it drew in data- attributes
// (data-bars, data-points, data-max, data-last), which the browser test reads.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function size(svg) {
  const box = svg.viewBox.baseVal;
  return { w: box && box.width ? box.width : 600, h: box && box.height ? box.height : 60 };
}

/** One bar per value, scaled to the largest; empty windows draw nothing. */
export function bars(svg, values) {
  const { w, h } = size(svg);
  const max = Math.max(1, ...values);
  const step = w / Math.max(1, values.length);
  const drawn = [el("line", { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, class: "axis" })];
  let count = 0;
  values.forEach((v, i) => {
    if (!(v > 0)) return;
    const height = Math.max(2, ((h - 4) * v) / max);
    const bar = el("rect", { x: i * step + 0.5, y: h - height, width: Math.max(1, step - 1), height, class: "bar" });
    bar.appendChild(el("title", {})).textContent = String(v);
    drawn.push(bar);
    count += 1;
  });
  svg.replaceChildren(...drawn);
  svg.dataset.bars = String(count);
  svg.dataset.max = String(Math.max(0, ...values));
}

/** Stacked areas, one per series (`{name, values}`, all the same length), the first at
 * the bottom; time runs left to right over `capacity` points. Returns the top of the
 * scale (the largest total). */
export function stacked(svg, series, capacity) {
  const { w, h } = size(svg);
  const length = Math.max(0, ...series.map((s) => s.values.length));
  const totals = Array.from({ length }, (_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = w / Math.max(1, capacity - 1);
  const x = (i) => (i * step).toFixed(1);
  const y = (v) => (h - ((h - 4) * v) / max).toFixed(1);
  const drawn = [];
  for (let tick = 1; tick <= 3; tick += 1) {
    const at = h - ((h - 4) * tick) / 3;
    drawn.push(el("line", { x1: 0, y1: at, x2: w, y2: at, class: "grid" }));
  }
  const below = new Array(length).fill(0);
  for (const { name, values } of series) {
    const above = below.map((b, i) => b + (values[i] || 0));
    if (length > 0) {
      const top = above.map((v, i) => `${x(i)},${y(v)}`);
      const bottom = below.map((v, i) => `${x(i)},${y(v)}`).reverse();
      if (length === 1) {
        // One point is no area: draw it one step wide.
        top.push(`${x(1)},${y(above[0])}`);
        bottom.unshift(`${x(1)},${y(below[0])}`);
      }
      drawn.push(el("polygon", { points: [...top, ...bottom].join(" "), class: `area ${name}` }));
    }
    above.forEach((v, i) => (below[i] = v));
  }
  svg.replaceChildren(...drawn);
  svg.dataset.points = String(length);
  svg.dataset.max = String(max);
  svg.dataset.last = series.map((s) => (s.values.length ? s.values[s.values.length - 1] : "")).join(",");
  return max;
}
