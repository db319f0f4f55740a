/**
 * Safety rules from the source requirements: what needs a human's approval whatever a policy
 * says, who may approve (four-eyes), and the rollback plan a dangerous action carries.
 */
import type { InterventionType } from './intervention.js';

/** Interventions that cannot be undone by Overseer and so always wait for approval. */
export const DESTRUCTIVE_TYPES: readonly InterventionType[] = ['TEAM_RESTART'];

/** More agents affected than this needs approval. */
export const MAX_AGENTS_WITHOUT_APPROVAL = 10;

/** Whether an intervention must wait in PENDING for a human, and why. */
export function approvalRule(type: InterventionType, affectedAgents: number, requested: boolean): { required: boolean; reason: string | null } {
  if (DESTRUCTIVE_TYPES.includes(type)) return { required: true, reason: `${type} is destructive and always needs approval` };
  if (affectedAgents > MAX_AGENTS_WITHOUT_APPROVAL) return { required: true, reason: `affects ${affectedAgents} agents (more than ${MAX_AGENTS_WITHOUT_APPROVAL})` };
  return { required: requested, reason: requested ? 'approval requested' : null };
}

/** Types whose effect an operator may want to undo; they carry a rollback plan in their details. */
export function rollbackPlan(type: InterventionType, targetId: string): { steps: string[]; note: string } | null {
  switch (type) {
    case 'AGENT_QUARANTINE':
      return { steps: [`POST /api/v1/agents/${targetId}/release`], note: 'release returns the agent to HEALTHY; its control endpoint should resume work on release' };
    case 'AGENT_RESTART':
      return { steps: [`watch GET /api/v1/agents/${targetId} until HEALTHY`, `if it stays STALE: POST /api/v1/interventions with AGENT_QUARANTINE`], note: 'a restart cannot be undone; the agent resumes from its own last checkpoint' };
    case 'TEAM_RESTART':
      return { steps: [`PUT /api/v1/interventions/<child id>/reject for members not yet restarted`, 'restarted members resume from their own checkpoints'], note: 'staggered: members not yet reached can still be stopped' };
    case 'TASK_REASSIGN':
      return { steps: ['POST /api/v1/interventions TASK_REASSIGN back to the original agent (action_details.to_agent_id)'], note: 'reassignment is reversible by a second reassignment' };
    default:
      return null;
  }
}

/**
 * Four-eyes: the approver must be someone other than whoever asked for the action (the caller
 * who created it, or the author of the policy version that created it). Actors are compared by
 * token id, the stable identity of a caller.
 */
export function fourEyesViolation(approverId: string, authors: readonly (string | null | undefined)[]): string | null {
  for (const a of authors) if (a && a === approverId) return 'four-eyes rule: approving or activating needs a different person from the one who requested the action or wrote the policy version';
  return null;
}
