/** Append-only migrations, run by Kysely's Migrator. Never edit a released migration; add one. */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { DialectCaps } from './dialect.js';

type Any = Kysely<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function initial(caps: DialectCaps): Migration {
  return {
    async up(db: Any) {
      const text = 'text';
      await db.schema
        .createTable('instances')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('host', text, (c) => c.notNull())
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('version', text, (c) => c.notNull())
        .addColumn('started_at', text, (c) => c.notNull())
        .addColumn('last_seen_at', text, (c) => c.notNull())
        .addColumn('clean_shutdown_at', text)
        .addColumn('recovered_at', text)
        .addColumn('recovered_by', text)
        .execute();

      await db.schema
        .createTable('supervisors')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('description', text)
        .addColumn('status', text, (c) => c.notNull())
        .addColumn('config', text, (c) => c.notNull())
        .addColumn('parent_id', text, (c) => c.references('supervisors.id'))
        .addColumn('parent_key', text, (c) => c.notNull())
        .addColumn('hierarchy_level', 'integer', (c) => c.notNull())
        .addColumn('running', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('owner_instance_id', text)
        .addColumn('restart_count', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('restarts_in_window', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('restart_window_started_at', text)
        .addColumn('last_restart_at', text)
        .addColumn('next_restart_at', text)
        .addColumn('last_heartbeat_at', text)
        .addColumn('resumed_at', text)
        .addColumn('last_policy_evaluation', text)
        .addColumn('failure_reason', text)
        .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('updated_at', text, (c) => c.notNull())
        .addUniqueConstraint('supervisors_parent_name_uq', ['parent_key', 'name'])
        .execute();
      await db.schema.createIndex('supervisors_parent_idx').on('supervisors').column('parent_id').execute();

      await db.schema
        .createTable('teams')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('supervisor_id', text, (c) => c.notNull().references('supervisors.id').onDelete('cascade'))
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('objective', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('updated_at', text, (c) => c.notNull())
        .addUniqueConstraint('teams_supervisor_name_uq', ['supervisor_id', 'name'])
        .execute();

      await db.schema
        .createTable('agents')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('status', text, (c) => c.notNull())
        .addColumn('control_url', text)
        .addColumn('metadata', text, (c) => c.notNull())
        .addColumn('team_id', text)
        .addColumn('supervisor_id', text)
        .addColumn('last_heartbeat_at', text)
        .addColumn('last_metrics', text)
        .addColumn('heartbeat_count', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('evaluated_count', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('status_changed_at', text, (c) => c.notNull())
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('updated_at', text, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('agents_supervisor_idx').on('agents').columns(['supervisor_id', 'status']).execute();
      await db.schema.createIndex('agents_team_idx').on('agents').column('team_id').execute();

      await db.schema
        .createTable('team_members')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('team_id', text, (c) => c.notNull().references('teams.id').onDelete('cascade'))
        .addColumn('agent_id', text, (c) => c.notNull().references('agents.id').onDelete('cascade'))
        .addColumn('role', text, (c) => c.notNull())
        .addColumn('joined_at', text, (c) => c.notNull())
        .addColumn('left_at', text)
        .execute();
      // The rule "an agent is an active member of at most one team", enforced by the database.
      await db.schema
        .createIndex('team_members_one_active_uq')
        .on('team_members')
        .column('agent_id')
        .unique()
        .where(sql.ref('left_at'), 'is', null)
        .execute();
      await db.schema.createIndex('team_members_team_idx').on('team_members').column('team_id').execute();

      await db.schema
        .createTable('policies')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('name', text, (c) => c.notNull().unique())
        .addColumn('policy_type', text, (c) => c.notNull())
        .addColumn('description', text)
        .addColumn('active_version', 'integer', (c) => c.notNull())
        .addColumn('latest_version', 'integer', (c) => c.notNull())
        .addColumn('is_active', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('effectiveness', 'real', (c) => c.notNull().defaultTo(0.5))
        .addColumn('times_triggered', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('successes', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('updated_at', text, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('policy_versions')
        .addColumn('policy_id', text, (c) => c.notNull().references('policies.id').onDelete('cascade'))
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('definition', text, (c) => c.notNull())
        .addColumn('created_by', text)
        .addColumn('created_by_id', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addPrimaryKeyConstraint('policy_versions_pk', ['policy_id', 'version'])
        .execute();

      await db.schema
        .createTable('policy_assignments')
        .addColumn('supervisor_id', text, (c) => c.notNull().references('supervisors.id').onDelete('cascade'))
        .addColumn('policy_id', text, (c) => c.notNull().references('policies.id').onDelete('cascade'))
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('created_at', text, (c) => c.notNull())
        .addPrimaryKeyConstraint('policy_assignments_pk', ['supervisor_id', 'policy_id'])
        .execute();

      await db.schema
        .createTable('policy_evaluations')
        .addColumn('id', caps.serialType, caps.serialColumn)
        .addColumn('supervisor_id', text, (c) => c.notNull())
        .addColumn('agent_id', text)
        .addColumn('trigger', text, (c) => c.notNull())
        .addColumn('evaluated', 'integer', (c) => c.notNull())
        .addColumn('matched', 'integer', (c) => c.notNull())
        // [{policy_id, version, matched, duration_us}] for every policy evaluated, in priority order.
        .addColumn('results', text, (c) => c.notNull())
        // {policy_id: decision path} for the policies that matched; the others are reproducible
        // from `context` and the policy version because evaluation is pure and deterministic.
        .addColumn('decision_paths', text, (c) => c.notNull())
        .addColumn('context', text, (c) => c.notNull())
        .addColumn('duration_us', 'integer', (c) => c.notNull())
        .addColumn('at', text, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('policy_evaluations_sup_idx').on('policy_evaluations').columns(['supervisor_id', 'id']).execute();

      await db.schema
        .createTable('interventions')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('supervisor_id', text, (c) => c.notNull().references('supervisors.id').onDelete('cascade'))
        .addColumn('policy_id', text)
        .addColumn('policy_version', 'integer')
        .addColumn('parent_intervention_id', text)
        .addColumn('intervention_type', text, (c) => c.notNull())
        .addColumn('target_type', text, (c) => c.notNull())
        .addColumn('target_id', text, (c) => c.notNull())
        .addColumn('reason', text, (c) => c.notNull())
        .addColumn('action_details', text, (c) => c.notNull())
        .addColumn('status', text, (c) => c.notNull())
        .addColumn('approval_required', 'integer', (c) => c.notNull())
        .addColumn('requested_by', text)
        .addColumn('requested_by_id', text)
        .addColumn('approved_by_id', text)
        .addColumn('approved_by', text)
        .addColumn('approved_at', text)
        .addColumn('rejected_by', text)
        .addColumn('rejected_reason', text)
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', text)
        .addColumn('deadline_at', text)
        .addColumn('started_at', text)
        .addColumn('completed_at', text)
        .addColumn('dedupe_key', text)
        .addColumn('outcome', text)
        .addColumn('error_message', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('updated_at', text, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('interventions_status_due_idx').on('interventions').columns(['status', 'next_attempt_at']).execute();
      await db.schema.createIndex('interventions_sup_status_idx').on('interventions').columns(['supervisor_id', 'status']).execute();
      await db.schema.createIndex('interventions_dedupe_idx').on('interventions').columns(['dedupe_key', 'created_at']).execute();
      await db.schema.createIndex('interventions_parent_idx').on('interventions').column('parent_intervention_id').execute();

      await db.schema
        .createTable('alert_groups')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('supervisor_id', text, (c) => c.notNull().references('supervisors.id').onDelete('cascade'))
        .addColumn('correlation_key', text, (c) => c.notNull())
        .addColumn('kind', text, (c) => c.notNull())
        .addColumn('agent_id', text)
        .addColumn('severity', text, (c) => c.notNull())
        .addColumn('alert_count', 'integer', (c) => c.notNull())
        .addColumn('first_at', text, (c) => c.notNull())
        .addColumn('last_at', text, (c) => c.notNull())
        .addColumn('window_ends_at', text, (c) => c.notNull())
        .addColumn('evaluated', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('alert_groups_key_idx').on('alert_groups').columns(['supervisor_id', 'correlation_key', 'window_ends_at']).execute();

      await db.schema
        .createTable('alerts')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('supervisor_id', text, (c) => c.notNull().references('supervisors.id').onDelete('cascade'))
        .addColumn('group_id', text, (c) => c.notNull().references('alert_groups.id').onDelete('cascade'))
        .addColumn('source', text, (c) => c.notNull())
        .addColumn('severity', text, (c) => c.notNull())
        .addColumn('kind', text, (c) => c.notNull())
        .addColumn('agent_id', text)
        .addColumn('message', text)
        .addColumn('at', text, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('alerts_sup_idx').on('alerts').columns(['supervisor_id', 'at']).execute();

      await db.schema
        .createTable('events')
        .addColumn('seq', caps.serialType, caps.serialColumn)
        .addColumn('supervisor_id', text)
        .addColumn('entity_type', text, (c) => c.notNull())
        .addColumn('entity_id', text)
        .addColumn('type', text, (c) => c.notNull())
        .addColumn('actor', text)
        .addColumn('payload', text, (c) => c.notNull())
        .addColumn('at', text, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_sup_idx').on('events').columns(['supervisor_id', 'seq']).execute();
      await db.schema.createIndex('events_actor_idx').on('events').columns(['actor', 'seq']).execute();

      await db.schema
        .createTable('tokens')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('role', text, (c) => c.notNull())
        .addColumn('agent_id', text)
        .addColumn('token_hash', text, (c) => c.notNull().unique())
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('revoked_at', text)
        .addColumn('last_used_at', text)
        .execute();
    },
  };
}

/** Every migration in order; names sort lexicographically. */
export function allMigrations(caps: DialectCaps): Record<string, Migration> {
  return { '0001_initial': initial(caps) };
}

class InCodeProvider implements MigrationProvider {
  constructor(private readonly migrations: Record<string, Migration>) {}
  async getMigrations() {
    return this.migrations;
  }
}

export class SchemaTooNewError extends Error {
  constructor(public readonly unknown: string[]) {
    super(`database schema is newer than this build of Overseer (unknown migrations: ${unknown.join(', ')}); upgrade Overseer or point it at another database`);
  }
}

/** Runs pending migrations; refuses to run against a schema newer than the code. */
export async function migrateToLatest(db: Any, caps: DialectCaps): Promise<string[]> {
  const migrations = allMigrations(caps);
  const migrator = new Migrator({ db, provider: new InCodeProvider(migrations) });
  const known = await migrator.getMigrations();
  const unknown: string[] = [];
  try {
    const applied = await db.selectFrom('kysely_migration').select('name').execute();
    for (const row of applied as { name: string }[]) if (!(row.name in migrations)) unknown.push(row.name);
  } catch {
    // No migration table yet: a fresh database.
  }
  if (unknown.length) throw new SchemaTooNewError(unknown);
  if (known.every((m) => m.executedAt)) return [];
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(`migration failed: ${String(error)}`);
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
