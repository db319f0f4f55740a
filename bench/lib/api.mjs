/** A small JSON client for Overseer's API over a keep-alive node:http agent. */
import http from 'node:http';
import { ADMIN_TOKEN } from './server.mjs';
import { request } from './util.mjs';

export function apiClient(base, { token = ADMIN_TOKEN, maxSockets = 32, timeoutMs = 60_000 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const call = async (method, path, body, { expect } = {}) => {
    const r = await request(`${base}/api/v1${path}`, { method, body, agent, timeoutMs, headers: { authorization: `Bearer ${token}` } });
    if (expect && !expect.includes(r.status)) {
      throw new Error(`${method} ${path} answered ${r.status}: ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`.slice(0, 600));
    }
    return r;
  };
  return {
    agent,
    get: (p, o) => call('GET', p, undefined, o),
    post: (p, b, o) => call('POST', p, b ?? {}, o),
    put: (p, b, o) => call('PUT', p, b, o),
    del: (p, o) => call('DELETE', p, undefined, o),
    close: () => agent.destroy(),
  };
}
