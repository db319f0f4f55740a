/** Reading Overseer's GET /metrics (Prometheus text format). */
import { request } from './util.mjs';

export async function scrape(baseUrl) {
  const r = await request(`${baseUrl}/metrics`, { timeoutMs: 5000 });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parse(r.text);
}

/** -> [{ name, labels: {..}, value }] */
export function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

export function value(samples, name, labels = {}) {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s ? s.value : null;
}

/** Cumulative histogram buckets {le -> count} for `name` (summing over other labels unless given). */
export function buckets(samples, name, labels = {}) {
  const map = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    if (!Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    map.set(le, (map.get(le) ?? 0) + s.value);
  }
  return [...map.entries()].sort((a, b) => a[0] - b[0]);
}

/** Bucket difference after - before (for a window between two scrapes). */
export function bucketDelta(after, before) {
  const b = new Map(before);
  return after.map(([le, c]) => [le, c - (b.get(le) ?? 0)]);
}

/**
 * Quantile from cumulative buckets, interpolated linearly inside the bucket like PromQL's
 * histogram_quantile. Returns { value, upperBound } in the histogram's unit.
 */
export function histogramQuantile(cumulative, q) {
  if (!cumulative.length) return null;
  const total = cumulative[cumulative.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of cumulative) {
    if (count >= rank) {
      if (le === Infinity) return { value: prevLe, upperBound: Infinity, count: total };
      const inBucket = count - prevCount;
      const v = inBucket ? prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket : le;
      return { value: v, upperBound: le, count: total };
    }
    prevLe = le;
    prevCount = count;
  }
  return null;
}
