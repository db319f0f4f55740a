/**
 * Issue 4 (4): a supervisor that fails on every tick is restarted with backoff while its
 * persisted restart budget lasts, then TERMINATED and escalated to its parent; its sibling never
 * notices. The budget lives in the database, so a kill -9 in the middle does not refill it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { api } from '../helpers/server-process.js';
import { createTestDb, dialects, type TestDb } from '../helpers/db.js';
import { ServerSet, journal, killHard } from '../helpers/failover-kit.js';
import { withRawDb } from '../helpers/raw-db.js';
import { until } from '../helpers/until.js';

const CONFIG = { heartbeat_interval_seconds: 1, policy_evaluation_interval_seconds: 1 };
/**
 * One key of the stored config goes bad; the rest (max_restarts 2 among them) stays as the operator
 * set it. (Replacing the whole config with only the bad key would also drop max_restarts, and the
 * budget would rightly fall back to the default of 5.)
 */
const corrupt = (stored: string): string => JSON.stringify({ ...JSON.parse(stored), heartbeat_interval_seconds: 'oops' });

interface BudgetRow { status: string; running: number; restart_count: number; restarts_in_window: number; restart_window_started_at: string | null; next_restart_at: string | null; failure_reason: string | null }

for (const dialect of await dialects()) {
  describe(`restart budget (${dialect})`, () => {
    const servers = new ServerSet();
    let db: TestDb | undefined;

    afterEach(async () => {
      await servers.reap();
      await db?.drop();
      db = undefined;
    });

    it('restarts a failing supervisor with backoff, terminates it when the persisted budget is spent (across a kill -9) and escalates to its parent', async () => {
      db = await createTestDb(dialect);
      let server = await servers.start({ databaseUrl: db.url });
      let client = api(server.url);
      const parent = (await client.post('/supervisors', { name: 'parent', config: CONFIG })).body;
      const broken = await client.post('/supervisors', { name: 'broken', parent_id: parent.id, config: { ...CONFIG, max_restarts: 2, restart_window_seconds: 300 } });
      expect(broken.status).toBe(201);
      const sibling = (await client.post('/supervisors', { name: 'sibling', parent_id: parent.id, config: CONFIG })).body;
      const childId: string = broken.body.id;
      for (const id of [parent.id, childId, sibling.id]) expect((await client.get(`/supervisors/${id}`)).body.status).toBe('ACTIVE');

      // Corrupt the stored config behind the running process: its next reload throws on every tick.
      await withRawDb(db.url, async (d) => {
        const row = await d.one<{ config: string }>('select config from supervisors where id = ?', [childId]);
        expect(JSON.parse(row!.config)).toMatchObject({ max_restarts: 2, restart_window_seconds: 300 });
        expect(await d.exec('update supervisors set config = ? where id = ?', [corrupt(row!.config), childId])).toBe(1);
      });
      const failed = await until(async () => {
        const s = (await client.get(`/supervisors/${childId}`)).body;
        return s.status === 'FAILED' ? s : null;
      }, { timeoutMs: 15_000, intervalMs: 10, what: 'the corrupted supervisor to fail' });
      expect(failed.failure_reason).toMatch(/stored config is invalid.*heartbeat_interval_seconds/);
      expect(failed.running).toBe(false);

      // Crash in the middle of the backoff: the budget spent so far is already committed.
      await killHard(server);
      const mid = await withRawDb(db.url, (d) => d.one<BudgetRow>('select * from supervisors where id = ?', [childId]));
      expect(mid!.status).toBe('FAILED');
      expect(mid!.restarts_in_window).toBeGreaterThanOrEqual(1);
      expect(mid!.restarts_in_window).toBeLessThanOrEqual(2);
      expect(mid!.restart_count).toBe(mid!.restarts_in_window);
      expect(mid!.restart_window_started_at).not.toBeNull();
      expect(mid!.next_restart_at).not.toBeNull();

      server = await servers.start({ databaseUrl: db.url });
      client = api(server.url);
      const terminated = await until(async () => {
        const s = (await client.get(`/supervisors/${childId}`)).body;
        return s.status === 'TERMINATED' ? s : null;
      }, { timeoutMs: 15_000, what: 'the supervisor to be terminated' });
      const terminatedAt = Date.now();
      expect(terminated.failure_reason).toMatch(/restart budget exhausted \(2 restarts in 300 s\)/);
      expect(terminated).toMatchObject({ running: false, restart_count: 2, restarts_in_window: 2, next_restart_at: null });

      // Exactly the budget was spent, over both processes: one failure, two restarts that failed again.
      const events = await journal(client, childId);
      const count = (type: string) => events.filter((e) => e.type === type).length;
      expect({
        failed: count('supervisor.failed'),
        scheduled: count('supervisor.restart_scheduled'),
        restart_failed: count('supervisor.restart_failed'),
        terminated: count('supervisor.terminated'),
        recovered: count('supervisor.recovered'),
      }).toEqual({ failed: 1, scheduled: 2, restart_failed: 2, terminated: 1, recovered: 1 });
      // Backoff: each restart waits longer than the one before, and no attempt came early.
      const scheduled = events.filter((e) => e.type === 'supervisor.restart_scheduled');
      const delays = scheduled.map((e) => Date.parse(String(e.payload.next_restart_at)) - Date.parse(e.at));
      expect(delays[0]).toBeGreaterThanOrEqual(500);
      expect(delays[0]).toBeLessThanOrEqual(1000);
      expect(delays[1]).toBeGreaterThanOrEqual(1000);
      expect(delays[1]).toBeLessThanOrEqual(2000);
      const attempts = events.filter((e) => e.type === 'supervisor.restart_failed');
      for (const [n, a] of attempts.entries()) expect(Date.parse(a.at)).toBeGreaterThanOrEqual(Date.parse(String(scheduled[n].payload.next_restart_at)));

      // The parent hears about it: a journal entry and an ESCALATE intervention that gets executed.
      const escalation = (await journal(client, parent.id)).filter((e) => e.type === 'escalation.child_terminated');
      expect(escalation).toHaveLength(1);
      expect(escalation[0].payload).toMatchObject({ child_supervisor_id: childId });
      expect(String(escalation[0].payload.reason)).toMatch(/restart budget exhausted/);
      const escalateId = String(escalation[0].payload.intervention_id);
      const intervention = await until(async () => {
        const i = (await client.get(`/interventions/${escalateId}`)).body;
        return i.status === 'COMPLETED' ? i : null;
      }, { what: 'the escalation to be executed' });
      expect(intervention).toMatchObject({ supervisor_id: parent.id, intervention_type: 'ESCALATE', target_id: childId });

      // The sibling was never touched and keeps beating.
      await until(async () => Date.parse((await client.get(`/supervisors/${sibling.id}/health`)).body.last_heartbeat_at) > terminatedAt, { what: 'a sibling heartbeat after the termination' });
      expect((await client.get(`/supervisors/${sibling.id}/health`)).body).toMatchObject({ status: 'ACTIVE', running: true, restart_count: 0, failure_reason: null });
      expect((await journal(client, sibling.id)).map((e) => e.type).filter((t) => /failed|restart|terminated/.test(t))).toEqual([]);
      expect((await client.get(`/supervisors/${parent.id}`)).body.status).toBe('ACTIVE');
      console.log(`[restart-budget ${dialect}] budget at kill -9: ${mid!.restarts_in_window}/2; backoff delays ${delays.join(', ')} ms; terminated, escalation ${escalateId} completed`);
    });
  });
}
