/**
 * Another process holding SQLite's write lock: a child `node` that opens the database file with
 * better-sqlite3, runs `BEGIN EXCLUSIVE` and keeps the transaction open until released (in WAL
 * mode readers still read; every writer gets SQLITE_BUSY).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const SCRIPT = `
const Database = require(process.env.BETTER_SQLITE3);
const db = new Database(process.env.DB_PATH);
db.pragma('busy_timeout = 5000');
db.exec('BEGIN EXCLUSIVE');
process.stdout.write('locked\\n');
process.stdin.on('data', () => { db.exec('ROLLBACK'); db.close(); process.stdout.write('released\\n'); process.exit(0); });
`;

export interface SqliteLock {
  child: ChildProcess;
  /** Ends the transaction and waits for the holder to exit. */
  release(): Promise<void>;
}

export async function holdSqliteWriteLock(path: string): Promise<SqliteLock> {
  const child = spawn(process.execPath, ['-e', SCRIPT], {
    env: { ...process.env, DB_PATH: path, BETTER_SQLITE3: require.resolve('better-sqlite3') },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('locked')) resolve();
    });
    child.stderr!.on('data', (d) => (out += d));
    child.on('exit', (code) => reject(new Error(`lock holder exited (${code}) before locking: ${out}`)));
  });
  return {
    child,
    async release() {
      if (child.exitCode === null) child.stdin!.write('release\n');
      await exited;
    },
  };
}
