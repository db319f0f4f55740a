/**
 * Level-triggered repair of interventions: nothing stays active for good. A delivery whose
 * result was never recorded goes back to the outbox under the same key; a team restart that
 * crashed before fanning out fans out; stopping a supervisor ends what it can no longer run.
 */
import { describe, expect, it } from 'vitest';
import { dialects } from '../helpers/db.js';
import { until } from '../helpers/until.js';
import { world } from './fixtures.js';

for (const dialect of await dialects()) {
  describe(`intervention reconciliation (${dialect})`, () => {
    it('re-dispatches, under the same key, an EXECUTING intervention no delivery is working on', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { agentIds: [agent] } = await w.createTeam(sup, ['/ok/a1']);
      const created = await w.h.req('POST', '/interventions', { supervisor_id: sup, intervention_type: 'AGENT_RESTART', target_type: 'AGENT', target_id: agent, reason: 'stuck delivery' });
      expect(created.body.status).toBe('APPROVED');
      // As if a delivery's final write had been lost: EXECUTING, and nobody delivering it.
      await w.h.store.db.updateTable('interventions').set({ status: 'EXECUTING', attempts: 1 }).where('id', '=', created.body.id).execute();

      await w.tickExecutor(); // reconciles (back to APPROVED, same id) and dispatches it again
      const done = await w.waitForStatus(created.body.id, ['COMPLETED']);
      const events = (await w.h.req('GET', `/events?supervisor_id=${sup}`)).body.items.filter((e: { entity_id: string }) => e.entity_id === created.body.id).map((e: { type: string }) => e.type);
      expect(events).toEqual(['intervention.created', 'intervention.released', 'intervention.executing', 'intervention.completed']);
      expect(done.attempts).toBe(2);
      expect(w.cs.deliveriesFor(created.body.id).map((d) => d.key)).toEqual([created.body.id]);
    });

    it('fans out a team restart that was left EXECUTING without children', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { teamId } = await w.createTeam(sup, ['/ok/a1', '/ok/a2']);
      const created = await w.h.req('POST', '/interventions', { supervisor_id: sup, intervention_type: 'TEAM_RESTART', target_type: 'TEAM', target_id: teamId, reason: 'crashed before fan-out' });
      expect(created.body.status).toBe('PENDING');
      await w.h.req('PUT', `/interventions/${created.body.id}/approve`, {}, w.author);
      // As if the process died between claiming the parent and creating its children.
      await w.h.store.db.updateTable('interventions').set({ status: 'EXECUTING', attempts: 1 }).where('id', '=', created.body.id).execute();

      await w.tickExecutor();
      const children = await w.h.store.db.selectFrom('interventions').select(['id', 'target_id']).where('parent_intervention_id', '=', created.body.id).execute();
      expect(children).toHaveLength(2);
      await until(async () => {
        await w.tickExecutor();
        return (await w.intervention(created.body.id)).status === 'COMPLETED';
      }, { what: 'the team restart to complete' });
    });

    it('ends the pending and approved interventions of a supervisor that is stopped', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { agentIds: [agent] } = await w.createTeam(sup, ['/ok/a1']);
      const pending = await w.h.req('POST', '/interventions', { supervisor_id: sup, intervention_type: 'AGENT_QUARANTINE', target_type: 'AGENT', target_id: agent, reason: 'waits for a human', approval_required: true });
      const approved = await w.h.req('POST', '/interventions', { supervisor_id: sup, intervention_type: 'AGENT_RESTART', target_type: 'AGENT', target_id: agent, reason: 'not yet dispatched' });
      expect([pending.body.status, approved.body.status]).toEqual(['PENDING', 'APPROVED']);

      expect((await w.h.req('POST', `/supervisors/${sup}/stop`)).body.status).toBe('TERMINATED');
      for (const id of [pending.body.id, approved.body.id]) {
        const i = await w.intervention(id);
        expect({ status: i.status, error: i.error_message }).toEqual({ status: 'FAILED', error: 'supervisor terminated before this intervention ran' });
      }
      const events = (await w.h.req('GET', `/events?supervisor_id=${sup}`)).body.items.map((e: { type: string }) => e.type);
      expect(events).toContain('interventions.cancelled');
      await w.tickExecutor();
      expect(w.cs.deliveries).toHaveLength(0);
    });
  });
}
