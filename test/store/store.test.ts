import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { Store } from '../../src/store/store.js';
import { openDatabase } from '../../src/store/dialect.js';
import { SchemaTooNewError, migrateToLatest } from '../../src/store/migrations.js';
import { getSupervisor, insertSupervisor, listSupervisors, updateSupervisor } from '../../src/store/supervisors.js';
import { addMember, insertAgent, insertTeam, removeMember, activeTeamOf } from '../../src/store/agents.js';
import { getIntervention, insertIntervention, transitionIntervention } from '../../src/store/interventions.js';
import { appendEvent, appendEvents, listEvents } from '../../src/store/events.js';
import { DEFAULT_CONFIG } from '../../src/domain/supervisor.js';
import { iso, uuidv7 } from '../../src/domain/time.js';
import { APP_TABLES, createTestDb, dialects, type TestDb } from '../helpers/db.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

const TABLES = APP_TABLES;

async function count(store: Store, table: string): Promise<number> {
  const r = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(store.db);
  return Number(r.rows[0].n);
}

async function migrationNames(store: Store): Promise<string[]> {
  const r = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(store.db);
  return r.rows.map((x) => x.name);
}

function newSupervisor(store: Store, id: string, name: string, at = T0, parent_id: string | null = null) {
  return insertSupervisor(store.db, { id, name, description: null, config: DEFAULT_CONFIG, parent_id, hierarchy_level: parent_id ? 1 : 0, at });
}

for (const dialect of await dialects()) {
  describe(`store (${dialect})`, () => {
    let tdb: TestDb;
    let store: Store | undefined;
    const opened: Store[] = [];
    const open = async () => {
      const s = await Store.open({ url: tdb.url });
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      tdb = await createTestDb(dialect);
      store = await open();
    });
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await tdb.drop();
    });

    describe('migrations', () => {
      it('create every table, empty, and record the applied migration', async () => {
        for (const t of TABLES) expect(await count(store!, t), t).toBe(0);
        expect(await migrationNames(store!)).toEqual(['0001_initial']);
        expect(store!.caps.name).toBe(dialect);
      });

      it('are idempotent: reopening keeps the data and applies nothing twice', async () => {
        await newSupervisor(store!, uuidv7(T0), 'kept');
        await store!.close();
        const again = await open();
        expect(await migrationNames(again)).toEqual(['0001_initial']);
        expect(await count(again, 'supervisors')).toBe(1);
        expect(await migrateToLatest(again.db, again.caps)).toEqual([]);
        const third = await open();
        expect(await count(third, 'supervisors')).toBe(1);
        expect(await migrationNames(third)).toEqual(['0001_initial']);
      });

      it('refuse a database whose schema is newer than the code (unknown migration row)', async () => {
        await sql`insert into kysely_migration (name, timestamp) values (${'9999_from_the_future'}, ${new Date(T0).toISOString()})`.execute(store!.db);
        await newSupervisor(store!, uuidv7(T0), 'untouched');
        await store!.close();

        const err = await Store.open({ url: tdb.url }).then(
          (s) => {
            opened.push(s);
            return null;
          },
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(SchemaTooNewError);
        expect((err as Error).message).toMatch(/schema is newer/);
        expect((err as Error).message).toContain('9999_from_the_future');
        expect((err as SchemaTooNewError).unknown).toEqual(['9999_from_the_future']);

        // Nothing was migrated or removed: the database is as it was.
        // A bare connection that runs no migrations, to look at the database Store.open refused.
        const raw = await openDatabase(tdb.url);
        try {
          expect((await sql<{ name: string }>`select name from kysely_migration order by name`.execute(raw.db)).rows.map((r) => r.name)).toEqual(['0001_initial', '9999_from_the_future']);
          expect(Number((await sql<{ n: number }>`select count(*) as n from supervisors`.execute(raw.db)).rows[0].n)).toBe(1);
        } finally {
          await raw.db.destroy();
        }
      });
    });

    describe('transactions', () => {
      it('a transaction that throws leaves neither the row nor its events behind', async () => {
        const id = uuidv7(T0);
        const boom = new Error('boom after writing');
        await expect(
          store!.tx(async (trx) => {
            await insertSupervisor(trx, { id, name: 'ghost', description: null, config: DEFAULT_CONFIG, parent_id: null, hierarchy_level: 0, at: T0 });
            await appendEvents(trx, [
              { supervisor_id: id, entity_type: 'supervisor', entity_id: id, type: 'supervisor.created', at: T0 },
              { supervisor_id: id, entity_type: 'supervisor', entity_id: id, type: 'supervisor.activated', at: T0 },
            ]);
            expect(await getSupervisor(trx, id)).toBeDefined();
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await getSupervisor(store!.db, id)).toBeUndefined();
        expect(await count(store!, 'supervisors')).toBe(0);
        expect(await count(store!, 'events')).toBe(0);
      });

      it('a constraint violation half-way rolls back the earlier writes of the same transaction', async () => {
        const a = uuidv7(T0);
        await newSupervisor(store!, a, 'taken');
        const before = await count(store!, 'events');
        const b = uuidv7(T0);
        const err = await store!
          .tx(async (trx) => {
            await appendEvent(trx, { supervisor_id: b, entity_type: 'supervisor', entity_id: b, type: 'supervisor.created', at: T0 });
            await insertSupervisor(trx, { id: b, name: 'taken', description: null, config: DEFAULT_CONFIG, parent_id: null, hierarchy_level: 0, at: T0 });
          })
          .catch((e: unknown) => e);
        expect(store!.caps.isUniqueViolation(err)).toBe(true);
        expect(await getSupervisor(store!.db, b)).toBeUndefined();
        expect(await count(store!, 'events')).toBe(before);
      });
    });

    describe('compare-and-set', () => {
      it('updateSupervisor with a failed status expectation changes nothing', async () => {
        const id = uuidv7(T0);
        await newSupervisor(store!, id, 'cas');
        const before = await getSupervisor(store!.db, id);
        expect(before?.status).toBe('SPAWNING');

        expect(await updateSupervisor(store!.db, id, { status: 'ACTIVE', failure_reason: 'x' }, T0 + 1000, { status: ['PAUSED', 'FAILED'] })).toBe(false);
        expect(await getSupervisor(store!.db, id)).toEqual(before);

        expect(await updateSupervisor(store!.db, id, { status: 'ACTIVE' }, T0 + 1000, { status: ['SPAWNING'], owner: 'someone-else' })).toBe(false);
        expect(await getSupervisor(store!.db, id)).toEqual(before);

        expect(await updateSupervisor(store!.db, id, { status: 'ACTIVE' }, T0 + 2000, { status: ['SPAWNING'], owner: null })).toBe(true);
        const after = await getSupervisor(store!.db, id);
        expect(after).toMatchObject({ status: 'ACTIVE', version: before!.version + 1, updated_at: iso(T0 + 2000) });

        // The same expectation a second time fails: the first writer won.
        expect(await updateSupervisor(store!.db, id, { status: 'PAUSED' }, T0 + 3000, { status: ['SPAWNING'] })).toBe(false);
        expect(await getSupervisor(store!.db, id)).toEqual(after);
      });

      it('updateSupervisor on a missing row reports no change', async () => {
        expect(await updateSupervisor(store!.db, uuidv7(T0), { status: 'ACTIVE' }, T0)).toBe(false);
      });

      it('transitionIntervention only moves a row still in one of `from`', async () => {
        const sup = uuidv7(T0);
        await newSupervisor(store!, sup, 'owner');
        const id = uuidv7(T0);
        await insertIntervention(store!.db, {
          id,
          supervisor_id: sup,
          intervention_type: 'AGENT_RESTART',
          target_type: 'AGENT',
          target_id: uuidv7(T0),
          reason: 'test',
          action_details: {},
          approval_required: true,
          requested_by: null,
          status: 'PENDING',
          at: T0,
        });
        const before = await getIntervention(store!.db, id);
        expect(await transitionIntervention(store!.db, id, ['APPROVED', 'EXECUTING'], { status: 'COMPLETED', outcome: '{"x":1}' }, T0 + 1000)).toBe(false);
        expect(await getIntervention(store!.db, id)).toEqual(before);

        expect(await transitionIntervention(store!.db, id, ['PENDING'], { status: 'APPROVED', approved_by: 'me' }, T0 + 1000)).toBe(true);
        const approved = await getIntervention(store!.db, id);
        expect(approved).toMatchObject({ status: 'APPROVED', approved_by: 'me', updated_at: iso(T0 + 1000) });

        // A second approver racing the first loses and writes nothing.
        expect(await transitionIntervention(store!.db, id, ['PENDING'], { status: 'REJECTED', rejected_by: 'other' }, T0 + 2000)).toBe(false);
        expect(await getIntervention(store!.db, id)).toEqual(approved);
      });
    });

    describe('team membership', () => {
      async function setup() {
        const sup = uuidv7(T0);
        await newSupervisor(store!, sup, 'teams');
        const [t1, t2, agent] = [uuidv7(T0), uuidv7(T0), uuidv7(T0)];
        await insertTeam(store!.db, { id: t1, supervisor_id: sup, name: 'one', objective: null, at: T0 });
        await insertTeam(store!.db, { id: t2, supervisor_id: sup, name: 'two', objective: null, at: T0 });
        await insertAgent(store!.db, { id: agent, name: 'a', control_url: null, metadata: {}, at: T0 });
        return { sup, t1, t2, agent };
      }

      it('the partial unique index allows one active membership per agent', async () => {
        const { sup, t1, t2, agent } = await setup();
        await store!.tx((trx) => addMember(trx, { id: uuidv7(T0), team_id: t1, supervisor_id: sup, agent_id: agent, role: 'MEMBER', at: T0 }));
        const err = await store!.tx((trx) => addMember(trx, { id: uuidv7(T0), team_id: t2, supervisor_id: sup, agent_id: agent, role: 'LEAD', at: T0 })).catch((e: unknown) => e);
        expect(store!.caps.isUniqueViolation(err)).toBe(true);
        // The same team twice is just as refused.
        const again = await store!.tx((trx) => addMember(trx, { id: uuidv7(T0), team_id: t1, supervisor_id: sup, agent_id: agent, role: 'LEAD', at: T0 })).catch((e: unknown) => e);
        expect(store!.caps.isUniqueViolation(again)).toBe(true);
        expect(await activeTeamOf(store!.db, agent)).toBe(t1);
        expect(await count(store!, 'team_members')).toBe(1);
      });

      it('allows re-joining (any team) once left_at is set, and keeps the history', async () => {
        const { sup, t1, t2, agent } = await setup();
        await addMember(store!.db, { id: uuidv7(T0), team_id: t1, supervisor_id: sup, agent_id: agent, role: 'MEMBER', at: T0 });
        expect(await removeMember(store!.db, t1, agent, T0 + 1000)).toBe(true);
        expect(await activeTeamOf(store!.db, agent)).toBeNull();
        await addMember(store!.db, { id: uuidv7(T0), team_id: t2, supervisor_id: sup, agent_id: agent, role: 'MEMBER', at: T0 + 2000 });
        expect(await removeMember(store!.db, t2, agent, T0 + 3000)).toBe(true);
        await addMember(store!.db, { id: uuidv7(T0), team_id: t1, supervisor_id: sup, agent_id: agent, role: 'LEAD', at: T0 + 4000 });
        expect(await activeTeamOf(store!.db, agent)).toBe(t1);
        expect(await count(store!, 'team_members')).toBe(3);
        const err = await addMember(store!.db, { id: uuidv7(T0), team_id: t2, supervisor_id: sup, agent_id: agent, role: 'MEMBER', at: T0 + 5000 }).catch((e: unknown) => e);
        expect(store!.caps.isUniqueViolation(err)).toBe(true);
        expect(await removeMember(store!.db, t2, agent, T0 + 6000)).toBe(false);
      });
    });

    describe('listSupervisors keyset pagination', () => {
      it('returns every row exactly once, in creation order, across pages', async () => {
        const created: string[] = [];
        // Bursts inside one millisecond (one transaction) and rows spread over time.
        await store!.tx(async (trx) => {
          for (let i = 0; i < 17; i++) {
            const id = uuidv7(T0);
            created.push(id);
            await insertSupervisor(trx, { id, name: `burst-${i}`, description: null, config: DEFAULT_CONFIG, parent_id: null, hierarchy_level: 0, at: T0 });
          }
        });
        for (let i = 0; i < 12; i++) {
          const id = uuidv7(T0 + 1 + i * 3);
          created.push(id);
          await newSupervisor(store!, id, `spread-${i}`, T0 + 1 + i * 3);
        }
        for (const limit of [1, 5, 7, 29, 30, 100]) {
          const seen: string[] = [];
          let after: string | undefined;
          for (let pages = 0; pages < 100; pages++) {
            const page = await listSupervisors(store!.db, { limit, after });
            expect(page.length).toBeLessThanOrEqual(limit);
            seen.push(...page.map((s) => s.id));
            if (page.length < limit) break;
            after = page[page.length - 1].id;
          }
          expect(seen, `limit ${limit}`).toEqual(created);
        }
      });

      it('filters by status and parent without losing rows between pages', async () => {
        const root = uuidv7(T0);
        await newSupervisor(store!, root, 'root');
        const kids: string[] = [];
        for (let i = 0; i < 9; i++) {
          const id = uuidv7(T0 + 10 + i);
          kids.push(id);
          await newSupervisor(store!, id, `kid-${i}`, T0 + 10 + i, root);
          if (i % 2) await updateSupervisor(store!.db, id, { status: 'ACTIVE' }, T0 + 100);
        }
        const active: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await listSupervisors(store!.db, { limit: 2, after, parent_id: root, status: 'ACTIVE' });
          active.push(...page.map((s) => s.id));
          if (page.length < 2) break;
          after = page[page.length - 1].id;
        }
        expect(active).toEqual(kids.filter((_, i) => i % 2));
      });
    });

    describe('events', () => {
      it('are appended with strictly increasing seq and filtered by supervisor and after', async () => {
        const [a, b] = [uuidv7(T0), uuidv7(T0)];
        await newSupervisor(store!, a, 'a');
        await newSupervisor(store!, b, 'b');
        for (let i = 0; i < 6; i++) {
          await store!.tx((trx) =>
            appendEvents(trx, [
              { supervisor_id: i % 2 ? b : a, entity_type: 'supervisor', entity_id: a, type: `t.${i}`, payload: { i }, at: T0 + i },
              { supervisor_id: null, entity_type: 'agent', type: `global.${i}`, at: T0 + i },
            ]),
          );
        }
        const all = await listEvents(store!.db, { limit: 1000 });
        expect(all).toHaveLength(12);
        for (let i = 1; i < all.length; i++) expect(all[i].seq).toBeGreaterThan(all[i - 1].seq);
        expect(all.map((e) => e.type)).toEqual([0, 1, 2, 3, 4, 5].flatMap((i) => [`t.${i}`, `global.${i}`]));
        expect(all[0]).toMatchObject({ supervisor_id: a, entity_type: 'supervisor', entity_id: a, payload: { i: 0 }, actor: null, at: iso(T0) });
        expect(typeof all[0].seq).toBe('number');

        const ofA = await listEvents(store!.db, { supervisor_id: a, limit: 1000 });
        expect(ofA.map((e) => e.type)).toEqual(['t.0', 't.2', 't.4']);

        const cut = all[5].seq;
        const later = await listEvents(store!.db, { after: cut, limit: 1000 });
        expect(later.map((e) => e.seq)).toEqual(all.slice(6).map((e) => e.seq));
        const laterOfB = await listEvents(store!.db, { supervisor_id: b, after: cut, limit: 1000 });
        expect(laterOfB.map((e) => e.type)).toEqual(['t.3', 't.5']);
        expect(await listEvents(store!.db, { after: all[11].seq, limit: 10 })).toEqual([]);

        const firstTwo = await listEvents(store!.db, { limit: 2 });
        expect(firstTwo.map((e) => e.seq)).toEqual(all.slice(0, 2).map((e) => e.seq));
      });

      it('a rolled-back append leaves no event and later appends still sort after earlier ones', async () => {
        await appendEvent(store!.db, { entity_type: 'x', type: 'first', at: T0 });
        await store!.tx(async (trx) => {
          await appendEvent(trx, { entity_type: 'x', type: 'rolled-back', at: T0 });
          throw new Error('abort');
        }).catch(() => {});
        await appendEvent(store!.db, { entity_type: 'x', type: 'second', at: T0 });
        const all = await listEvents(store!.db, { limit: 10 });
        expect(all.map((e) => e.type)).toEqual(['first', 'second']);
        expect(all[1].seq).toBeGreaterThan(all[0].seq);
      });
    });
  });
}
