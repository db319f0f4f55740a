/** Runs the real server (`node dist/main.js serve`) as a child process for failover tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { until } from './until.js';

export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  port: number;
  output: () => string;
  /** Resolves with the exit code/signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnOptions { databaseUrl: string; port?: number; env?: Record<string, string>; waitReady?: boolean }

export async function spawnServer(opts: SpawnOptions): Promise<ServerProcess> {
  const port = opts.port ?? (await freePort());
  const child = spawn(process.execPath, [MAIN, 'serve'], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: opts.databaseUrl,
      OVERSEER_ADMIN_TOKEN: ADMIN_TOKEN,
      LOG_LEVEL: process.env.TEST_SERVER_LOG_LEVEL ?? 'warn',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const proc: ServerProcess = { child, pid: child.pid as number, url, port, output: () => out, exited, kill: (signal = 'SIGKILL') => void child.kill(signal) };
  if (opts.waitReady !== false) {
    let gone = false;
    void exited.then(() => (gone = true));
    await until(
      async () => {
        if (gone) throw new Error(`server exited before ready:\n${out}`);
        const r = await fetch(`${url}/readyz`).catch(() => null);
        return r?.status === 200;
      },
      { timeoutMs: 20_000, what: 'server readiness' },
    );
  }
  return proc;
}

/** A tiny JSON client for the API. */
export function api(base: string, token = ADMIN_TOKEN) {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json: any = null; // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, body: json };
  };
  return {
    get: (p: string) => call('GET', p),
    post: (p: string, b?: unknown) => call('POST', p, b),
    put: (p: string, b?: unknown) => call('PUT', p, b),
    del: (p: string) => call('DELETE', p),
  };
}
