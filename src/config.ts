/** Environment and flags -> validated configuration. */

export interface Config {
  host: string;
  port: number;
  databaseUrl: string;
  adminToken: string | undefined;
  shutdownGraceMs: number;
  logLevel: string;
  controlUrlAllow: string[] | null;
  /** Ingest (heartbeat, alert) requests per second allowed per agent token, and per other token. */
  agentRateLimit: number;
  ingestRateLimit: number;
  /** Policy evaluation records older than this are pruned. */
  evaluationRetentionHours: number;
  /** Four-eyes approvals and policy activation (OVERSEER_FOUR_EYES=on|off, default on). */
  fourEyes: boolean;
}

export class ConfigError extends Error {}

function int(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer between ${min} and ${max} (got "${raw}")`);
  return n;
}

function onOff(name: string, raw: string | undefined, def: boolean): boolean {
  const v = raw?.trim().toLowerCase();
  if (v === undefined || v === '') return def;
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new ConfigError(`${name} must be on or off (got "${raw}")`);
}

/** Reads the process environment, with command-line flags taking precedence. */
export function loadConfig(env: NodeJS.ProcessEnv, flags: { host?: string; port?: string; databaseUrl?: string } = {}): Config {
  const databaseUrl = flags.databaseUrl ?? env.DATABASE_URL ?? 'sqlite:./data/overseer.db';
  if (!/^(sqlite:|postgres(ql)?:\/\/)/.test(databaseUrl)) throw new ConfigError(`DATABASE_URL must be sqlite:<path> or postgres://... (got "${databaseUrl.slice(0, 40)}")`);
  const allow = env.OVERSEER_CONTROL_URL_ALLOW?.trim();
  const adminToken = env.OVERSEER_ADMIN_TOKEN?.trim() || undefined;
  if (adminToken && adminToken.length < 16) throw new ConfigError('OVERSEER_ADMIN_TOKEN must be at least 16 characters');
  return {
    host: flags.host ?? env.HOST ?? '127.0.0.1',
    port: int('PORT', flags.port ?? env.PORT, 8080, 0, 65535),
    databaseUrl,
    adminToken,
    shutdownGraceMs: int('OVERSEER_SHUTDOWN_GRACE_MS', env.OVERSEER_SHUTDOWN_GRACE_MS, 10_000, 0, 600_000),
    logLevel: env.LOG_LEVEL ?? 'info',
    controlUrlAllow: allow ? allow.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean) : null,
    agentRateLimit: int('OVERSEER_AGENT_RATE_LIMIT', env.OVERSEER_AGENT_RATE_LIMIT, 20, 1, 1_000_000),
    ingestRateLimit: int('OVERSEER_INGEST_RATE_LIMIT', env.OVERSEER_INGEST_RATE_LIMIT, 20_000, 1, 10_000_000),
    evaluationRetentionHours: int('OVERSEER_EVALUATION_RETENTION_HOURS', env.OVERSEER_EVALUATION_RETENTION_HOURS, 24, 1, 24 * 365),
    fourEyes: onOff('OVERSEER_FOUR_EYES', env.OVERSEER_FOUR_EYES, true),
  };
}
