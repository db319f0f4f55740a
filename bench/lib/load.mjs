/** Starting the load generator processes and collecting their results. */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withTimeout } from './util.mjs';

const DRIVER = fileURLToPath(new URL('../load/heartbeat-driver.mjs', import.meta.url));
const AUTOCANNON = fileURLToPath(new URL('../load/autocannon-child.mjs', import.meta.url));

function tempDir(scope) {
  const dir = mkdtempSync(join(tmpdir(), 'overseer-bench-load-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** autocannon in a child process; resolves its summary. */
export async function runAutocannon(scope, cfg) {
  const dir = tempDir(scope);
  const file = join(dir, 'autocannon.json');
  writeFileSync(file, JSON.stringify(cfg));
  const child = scope.child(spawn(process.execPath, [AUTOCANNON, file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await withTimeout(new Promise((r) => child.once('exit', r)), (cfg.duration + 60) * 1000, 'autocannon');
  const line = out.trim().split('\n').pop();
  if (code !== 0 || !line) throw new Error(`autocannon exited ${code}: ${err.slice(-2000)}`);
  return JSON.parse(line);
}

/**
 * bench/load/heartbeat-driver.mjs in a child process. `on.windowStart/windowEnd(at)` are called
 * when its measured window opens and closes (after warm-up). Resolves its result file.
 */
export async function runDriver(scope, cfg, on = {}) {
  const dir = tempDir(scope);
  const file = join(dir, 'driver.json');
  const outFile = join(dir, 'driver-out.json');
  writeFileSync(file, JSON.stringify({ ...cfg, outFile }));
  const child = scope.child(fork(DRIVER, [file], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] }));
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const pending = [];
  let started = false;
  let endSeen;
  const ended = new Promise((r) => (endSeen = r));
  child.on('message', (m) => {
    if (m?.type === 'window-start') {
      started = true;
      if (on.windowStart) pending.push(Promise.resolve().then(() => on.windowStart(m.at)));
    }
    if (m?.type === 'window-end') {
      if (on.windowEnd) pending.push(Promise.resolve().then(() => on.windowEnd(m.at)));
      endSeen();
    }
  });
  const budget = ((cfg.warmupS ?? 0) + cfg.durationS + 60) * 1000;
  const code = await withTimeout(new Promise((r) => child.once('exit', r)), budget, 'load driver');
  // IPC messages may still be in flight when 'exit' fires: wait for the window's end message.
  if (started) await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
  await Promise.all(pending);
  if (code !== 0) throw new Error(`load driver exited ${code}: ${err.slice(-2000)}`);
  return JSON.parse(readFileSync(outFile, 'utf8'));
}
