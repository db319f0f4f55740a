/** Supervisor lifecycle and configuration: pure rules, no I/O. */

export const SUPERVISOR_STATUSES = ['SPAWNING', 'ACTIVE', 'PAUSED', 'UNRESPONSIVE', 'FAILED', 'TERMINATED'] as const;
export type SupervisorStatus = (typeof SUPERVISOR_STATUSES)[number];

const TRANSITIONS: Record<SupervisorStatus, readonly SupervisorStatus[]> = {
  SPAWNING: ['ACTIVE', 'FAILED'],
  ACTIVE: ['PAUSED', 'FAILED', 'UNRESPONSIVE', 'TERMINATED'],
  PAUSED: ['ACTIVE', 'TERMINATED'],
  UNRESPONSIVE: ['ACTIVE', 'FAILED'],
  FAILED: ['ACTIVE', 'TERMINATED'],
  TERMINATED: [],
};

/** True when the design's state machine allows `from -> to`. */
export function canTransition(from: SupervisorStatus, to: SupervisorStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Operator commands on a supervisor and the transition each one asks for. */
export const SUPERVISOR_COMMANDS = {
  start: { from: ['SPAWNING', 'FAILED'], to: 'ACTIVE' },
  pause: { from: ['ACTIVE'], to: 'PAUSED' },
  resume: { from: ['PAUSED'], to: 'ACTIVE' },
  stop: { from: ['ACTIVE', 'PAUSED', 'FAILED'], to: 'TERMINATED' },
} as const satisfies Record<string, { from: readonly SupervisorStatus[]; to: SupervisorStatus }>;
export type SupervisorCommand = keyof typeof SUPERVISOR_COMMANDS;

/** Statuses in which a supervisor watches its agents and acts on them. */
export const MONITORING_STATUSES: readonly SupervisorStatus[] = ['ACTIVE', 'UNRESPONSIVE'];

export interface SupervisorConfig {
  heartbeat_interval_seconds: number;
  policy_evaluation_interval_seconds: number;
  agent_heartbeat_timeout_seconds: number;
  alert_correlation_window_seconds: number;
  max_hierarchy_depth: number;
  intervention_timeout_seconds: number;
  intervention_cooldown_seconds: number;
  max_concurrent_interventions: number;
  policy_learning_rate: number;
  max_restarts: number;
  restart_window_seconds: number;
}

interface Range { default: number; min: number; max: number; integer: boolean }

export const CONFIG_RANGES: Record<keyof SupervisorConfig, Range> = {
  heartbeat_interval_seconds: { default: 30, min: 1, max: 300, integer: true },
  policy_evaluation_interval_seconds: { default: 10, min: 1, max: 60, integer: true },
  agent_heartbeat_timeout_seconds: { default: 90, min: 3, max: 3600, integer: true },
  alert_correlation_window_seconds: { default: 300, min: 10, max: 3600, integer: true },
  max_hierarchy_depth: { default: 5, min: 1, max: 10, integer: true },
  intervention_timeout_seconds: { default: 300, min: 5, max: 3600, integer: true },
  intervention_cooldown_seconds: { default: 300, min: 0, max: 86400, integer: true },
  max_concurrent_interventions: { default: 10, min: 1, max: 100, integer: true },
  policy_learning_rate: { default: 0.1, min: 0.01, max: 0.5, integer: false },
  max_restarts: { default: 5, min: 0, max: 100, integer: true },
  restart_window_seconds: { default: 300, min: 10, max: 86400, integer: true },
};

export const DEFAULT_CONFIG: SupervisorConfig = Object.fromEntries(
  Object.entries(CONFIG_RANGES).map(([k, r]) => [k, r.default]),
) as unknown as SupervisorConfig;

export interface Problem { path: string; message: string }

/**
 * Validates a (partial) supervisor config against the design's keys and ranges and merges it
 * over `base`. Unknown keys, wrong types and out-of-range values are all reported.
 */
export function validateConfig(
  input: unknown,
  base: SupervisorConfig = DEFAULT_CONFIG,
  path = 'config',
): { ok: true; value: SupervisorConfig } | { ok: false; problems: Problem[] } {
  if (input === undefined || input === null) return { ok: true, value: { ...base } };
  if (typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: [{ path, message: 'must be an object' }] };
  }
  const problems: Problem[] = [];
  const value: SupervisorConfig = { ...base };
  for (const [key, raw] of Object.entries(input as Record<string, unknown>)) {
    // Own keys only: `constructor`, `toString` and `__proto__` must not pass as known keys.
    const range = Object.hasOwn(CONFIG_RANGES, key) ? (CONFIG_RANGES as Record<string, Range>)[key] : undefined;
    const at = `${path}.${key}`;
    if (!range) {
      problems.push({ path: at, message: 'unknown config key' });
      continue;
    }
    if (typeof raw !== 'number' || !Number.isFinite(raw)) {
      problems.push({ path: at, message: 'must be a number' });
      continue;
    }
    if (range.integer && !Number.isInteger(raw)) {
      problems.push({ path: at, message: 'must be an integer' });
      continue;
    }
    if (raw < range.min || raw > range.max) {
      problems.push({ path: at, message: `must be between ${range.min} and ${range.max}` });
      continue;
    }
    (value as unknown as Record<string, number>)[key] = raw;
  }
  return problems.length ? { ok: false, problems } : { ok: true, value };
}

/** Heartbeats a supervisor is considered to have missed at `now`. */
export function missedHeartbeats(lastBeatMs: number | null, resumedAtMs: number | null, intervalSeconds: number, now: number): number {
  const since = Math.max(lastBeatMs ?? 0, resumedAtMs ?? 0);
  if (since === 0) return 0;
  const elapsed = now - since;
  return Math.max(0, Math.floor(elapsed / (intervalSeconds * 1000)) - 0);
}

/** A supervisor with more than this many missed beats is UNRESPONSIVE. */
export const UNRESPONSIVE_AFTER_MISSED = 3;

/**
 * Restart budget: `max_restarts` within a sliding `restart_window_seconds` that starts at the
 * first restart of the window. Returns the new window fields, or `exhausted`.
 */
export function takeRestart(
  state: { restarts_in_window: number; restart_window_started_at: number | null },
  config: Pick<SupervisorConfig, 'max_restarts' | 'restart_window_seconds'>,
  now: number,
): { allowed: boolean; restarts_in_window: number; restart_window_started_at: number } {
  const windowOpen = state.restart_window_started_at !== null && now - state.restart_window_started_at < config.restart_window_seconds * 1000;
  const used = windowOpen ? state.restarts_in_window : 0;
  const start = windowOpen ? (state.restart_window_started_at as number) : now;
  if (used >= config.max_restarts) return { allowed: false, restarts_in_window: used, restart_window_started_at: start };
  return { allowed: true, restarts_in_window: used + 1, restart_window_started_at: start };
}

/** Restarts left in the current window. */
export function restartsLeft(
  state: { restarts_in_window: number; restart_window_started_at: number | null },
  config: Pick<SupervisorConfig, 'max_restarts' | 'restart_window_seconds'>,
  now: number,
): number {
  const windowOpen = state.restart_window_started_at !== null && now - state.restart_window_started_at < config.restart_window_seconds * 1000;
  return Math.max(0, config.max_restarts - (windowOpen ? state.restarts_in_window : 0));
}

/** Capped, jittered exponential backoff (full jitter over the upper half). */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
