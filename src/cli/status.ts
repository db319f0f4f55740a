/** `overseer status`: supervisors and their health, straight from the database. */
import { Store } from '../store/store.js';
import { listSupervisors } from '../store/supervisors.js';
import { countAgentsByStatus } from '../store/agents.js';
import { countActive } from '../store/interventions.js';
import { missedHeartbeats, validateConfig } from '../domain/supervisor.js';

export async function runStatus(url: string, asJson: boolean): Promise<void> {
  const store = await Store.open({ url });
  try {
    const rows: Record<string, string | number | boolean | null>[] = [];
    let after: string | undefined;
    for (;;) {
      const batch = await listSupervisors(store.db, { limit: 500, after });
      for (const s of batch) {
        const counts = await countAgentsByStatus(store.db, s.id);
        const cfg = validateConfig(s.config);
        const missed = cfg.ok && s.running ? missedHeartbeats(s.last_heartbeat_at ? Date.parse(s.last_heartbeat_at) : null, s.resumed_at ? Date.parse(s.resumed_at) : null, cfg.value.heartbeat_interval_seconds, Date.now()) : 0;
        rows.push({
          id: s.id,
          name: s.name,
          status: s.status,
          running: s.running,
          level: s.hierarchy_level,
          last_heartbeat_at: s.last_heartbeat_at,
          missed,
          agents: Object.values(counts).reduce((a, b) => a + b, 0),
          healthy: counts.HEALTHY ?? 0,
          stale: counts.STALE ?? 0,
          quarantined: counts.QUARANTINED ?? 0,
          active_interventions: await countActive(store.db, s.id),
          restarts: s.restart_count,
        });
      }
      if (batch.length < 500) break;
      after = batch[batch.length - 1].id;
    }
    if (asJson) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    if (!rows.length) {
      process.stdout.write('no supervisors\n');
      return;
    }
    const cols = Object.keys(rows[0]);
    const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '-').length)));
    const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
    process.stdout.write(`${line(cols.map((c) => c.toUpperCase()))}\n`);
    for (const r of rows) process.stdout.write(`${line(cols.map((c) => String(r[c] ?? '-')))}\n`);
  } finally {
    await store.close();
  }
}
