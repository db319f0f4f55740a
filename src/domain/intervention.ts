/** Intervention lifecycle: pure rules, no I/O. */

export const INTERVENTION_STATUSES = ['PENDING', 'APPROVED', 'REJECTED', 'EXECUTING', 'COMPLETED', 'FAILED'] as const;
export type InterventionStatus = (typeof INTERVENTION_STATUSES)[number];

export const INTERVENTION_TYPES = [
  'AGENT_RESTART',
  'AGENT_QUARANTINE',
  'TEAM_RESTART',
  'TASK_REASSIGN',
  'PRIORITY_OVERRIDE',
  'ESCALATE',
  'NOTIFY',
] as const;
export type InterventionType = (typeof INTERVENTION_TYPES)[number];

export const TARGET_TYPES = ['AGENT', 'TEAM'] as const;
export type TargetType = (typeof TARGET_TYPES)[number];

/** Statuses that still hold a slot against cool-downs and duplicates. */
export const ACTIVE_INTERVENTION_STATUSES: readonly InterventionStatus[] = ['PENDING', 'APPROVED', 'EXECUTING'];
export const FINAL_INTERVENTION_STATUSES: readonly InterventionStatus[] = ['REJECTED', 'COMPLETED', 'FAILED'];

const TRANSITIONS: Record<InterventionStatus, readonly InterventionStatus[]> = {
  PENDING: ['APPROVED', 'REJECTED', 'FAILED'],
  APPROVED: ['EXECUTING', 'FAILED'],
  EXECUTING: ['COMPLETED', 'FAILED', 'APPROVED'],
  REJECTED: [],
  COMPLETED: [],
  FAILED: [],
};

export function canTransitionIntervention(from: InterventionStatus, to: InterventionStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Classifies a control-endpoint HTTP status: done, failed for good, or worth another try. */
export function classifyHttpStatus(status: number): 'completed' | 'failed' | 'retry' {
  if (status >= 200 && status < 300) return 'completed';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'failed';
}

/** Cool-down key: one policy, one target. */
export function dedupeKey(policyId: string, targetType: TargetType, targetId: string): string {
  return `${policyId}:${targetType}:${targetId}`;
}

/** Exponential moving average of a policy's success (1) / failure (0) outcomes. */
export function updateEffectiveness(current: number, success: boolean, learningRate: number): number {
  return current * (1 - learningRate) + (success ? 1 : 0) * learningRate;
}
