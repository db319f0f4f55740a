/**
 * An agent control endpoint whose answers the test decides while the request is open: each
 * delivery waits on `answer(delivery)` (a promise the test controls), so "in flight" lasts exactly
 * as long as the test needs instead of a guessed delay. Deliveries and Idempotency-Keys are
 * recorded like in control-server.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GatedDelivery {
  key: string | undefined;
  body: Record<string, unknown>;
  /** How many deliveries carried this key so far, this one included. */
  count: number;
  receivedAt: number;
  answeredAt: number | null;
  status: number | null;
}

/** `null` keeps the request open until the client goes away. */
export type Answer = { status: number; body?: unknown } | null;

export class GatedEndpoint {
  readonly deliveries: GatedDelivery[] = [];
  private server: Server | null = null;
  private readonly open = new Set<ServerResponse>();
  port = 0;

  constructor(private readonly answer: (d: GatedDelivery) => Promise<Answer>) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path = '/control'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  deliveriesFor(key: string): GatedDelivery[] {
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
    const d: GatedDelivery = { key, body, count: this.deliveries.filter((x) => x.key === key).length + 1, receivedAt: Date.now(), answeredAt: null, status: null };
    this.deliveries.push(d);
    this.open.add(res);
    res.on('close', () => this.open.delete(res));
    const a = await this.answer(d);
    if (a === null || res.destroyed) return;
    d.answeredAt = Date.now();
    d.status = a.status;
    res.writeHead(a.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(a.body ?? { ok: a.status < 300, handled: key, duplicate: d.count > 1 }));
  }

  async stop(): Promise<void> {
    for (const r of this.open) r.destroy();
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server!.close(() => r()));
    }
  }
}

/** A promise with its resolver, for gates the test opens. */
export function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}
