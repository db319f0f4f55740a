/** Agent and team rules: pure, no I/O. */

export const AGENT_STATUSES = ['REGISTERED', 'HEALTHY', 'STALE', 'QUARANTINED', 'RESTARTING', 'TERMINATED'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const TEAM_ROLES = ['LEAD', 'MEMBER', 'TRAINEE'] as const;
export type TeamRole = (typeof TEAM_ROLES)[number];

/** The status an agent moves to when a heartbeat arrives; quarantine only ends by release. */
export function statusAfterHeartbeat(current: AgentStatus): AgentStatus {
  return current === 'QUARANTINED' || current === 'TERMINATED' ? current : 'HEALTHY';
}

/** Statuses that can go STALE when heartbeats stop. */
export const CAN_GO_STALE: readonly AgentStatus[] = ['REGISTERED', 'HEALTHY', 'RESTARTING'];

/** Statuses whose telemetry policies evaluate; quarantined agents are already contained. */
export const EVALUATED_STATUSES: readonly AgentStatus[] = ['REGISTERED', 'HEALTHY', 'STALE', 'RESTARTING'];

/**
 * Staleness is measured from the latest of the agent's last heartbeat, its registration and
 * the moment its supervisor resumed, so time the supervisor was down never counts.
 */
export function isStale(
  lastHeartbeatMs: number | null,
  registeredMs: number,
  resumedAtMs: number | null,
  timeoutSeconds: number,
  now: number,
): boolean {
  const since = Math.max(lastHeartbeatMs ?? 0, registeredMs, resumedAtMs ?? 0);
  return now - since > timeoutSeconds * 1000;
}
