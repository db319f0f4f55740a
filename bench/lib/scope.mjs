/**
 * Resource scopes: every child process, temporary file and database a suite creates registers a
 * releaser here, and the releasers run in reverse order when the suite ends (normally or not).
 * The runner also releases every open scope on SIGINT/SIGTERM, and kills any child still alive
 * when the process exits, so an interrupted benchmark leaves nothing behind.
 */
const openScopes = new Set();
const liveChildren = new Set();

export class Scope {
  constructor(name) {
    this.name = name;
    this.releasers = [];
    openScopes.add(this);
  }

  /** Registers `fn` to run when the scope closes; returns a function that runs it early (once). */
  defer(fn) {
    let done = false;
    const once = async () => {
      if (done) return;
      done = true;
      await fn();
    };
    this.releasers.push(once);
    return once;
  }

  /** Tracks a child process: killed with SIGKILL at scope close if still running. */
  child(child) {
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    this.defer(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
      }
    });
    return child;
  }

  async close() {
    openScopes.delete(this);
    const errors = [];
    while (this.releasers.length) {
      const fn = this.releasers.pop();
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) process.stderr.write(`[bench] cleanup of ${this.name}: ${errors.map((e) => e.message).join('; ')}\n`);
  }
}

/** Runs `fn(scope)` and always closes the scope afterwards. */
export async function withScope(name, fn) {
  const scope = new Scope(name);
  try {
    return await fn(scope);
  } finally {
    await scope.close();
  }
}

export async function closeAllScopes() {
  for (const s of [...openScopes].reverse()) await s.close();
}

/** Last resort on process exit: synchronous kill of every child still running. */
export function killLiveChildrenSync() {
  for (const c of liveChildren) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
