/**
 * Load generator process for the heartbeat suite: autocannon against
 * POST /api/v1/agents/{id}/heartbeat, rotating over the given agent ids.
 * Usage: node bench/load/autocannon-child.mjs <config.json>
 *   config: { url, token?, agentIds, connections, duration, body }
 * Prints one JSON line with the results on stdout.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ids = cfg.agentIds;
let next = 0;

const instance = autocannon({
  url: cfg.url,
  connections: cfg.connections,
  duration: cfg.duration,
  timeout: 10,
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(cfg.token ? { authorization: `Bearer ${cfg.token}` } : {}) },
  body: JSON.stringify(cfg.body),
  requests: [
    {
      setupRequest: (req) => {
        req.path = `/api/v1/agents/${ids[next++ % ids.length]}/heartbeat`;
        return req;
      },
    },
  ],
});

process.once('SIGTERM', () => instance.stop());

instance.on('done', (r) => {
  const ok = r['2xx'] ?? 0;
  const out = {
    duration_s: r.duration,
    total: r.requests.total,
    ok_2xx: ok,
    non_2xx: r.non2xx ?? 0,
    errors: r.errors ?? 0,
    timeouts: r.timeouts ?? 0,
    rps: ok / r.duration,
    latency_ms: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.mean },
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
});
