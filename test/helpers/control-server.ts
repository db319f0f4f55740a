/**
 * A real local HTTP server playing the agents' control endpoints. It records every delivery and
 * counts Idempotency-Keys; behaviour is chosen per path: /ok, /fail-once (503 then 200),
 * /hang (never answers), /reject (400), /flaky (alternating 503/200).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery { path: string; key: string | undefined; body: Record<string, unknown>; at: number; status: number }

export class ControlServer {
  readonly deliveries: Delivery[] = [];
  private readonly seen = new Map<string, number>();
  private readonly hanging = new Set<ServerResponse>();
  private server: Server | null = null;
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path.startsWith('/') ? path : `/${path}`}`;
  }

  /** Distinct idempotency keys seen, and how often each arrived. */
  keyCounts(): Map<string, number> {
    return new Map(this.seen);
  }

  deliveriesFor(key: string): Delivery[] {
    return this.deliveries.filter((d) => d.key === key);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      body = {};
    }
    const key = req.headers['idempotency-key'] as string | undefined;
    const path = (req.url ?? '/').split('?')[0];
    const count = (this.seen.get(key ?? '') ?? 0) + 1;
    if (key) this.seen.set(key, count);
    const kind = path.split('/').filter(Boolean)[0] ?? 'ok';
    let status = 200;
    if (kind === 'hang') {
      this.deliveries.push({ path, key, body, at: Date.now(), status: 0 });
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    if (kind === 'fail-once' && count === 1) status = 503;
    if (kind === 'reject') status = 400;
    if (kind === 'flaky' && count % 2 === 1) status = 503;
    this.deliveries.push({ path, key, body, at: Date.now(), status });
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(status === 200 ? { ok: true, handled: key, duplicate: count > 1 } : { error: 'nope' }));
  }

  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server!.close(() => r()));
    }
  }
}
