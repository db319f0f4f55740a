/** Row types as the database holds them. Timestamps are ISO-8601 UTC text, JSON is text, booleans 0/1. */
import type { Generated } from 'kysely';

export interface InstancesTable {
  id: string;
  host: string;
  pid: number;
  version: string;
  started_at: string;
  last_seen_at: string;
  clean_shutdown_at: string | null;
  /** Set when another process took over after this one crashed. */
  recovered_at: string | null;
  recovered_by: string | null;
}

export interface SupervisorsTable {
  id: string;
  name: string;
  description: string | null;
  status: string;
  config: string;
  parent_id: string | null;
  /** parent_id or '' so that names are unique among roots too. */
  parent_key: string;
  hierarchy_level: number;
  running: number;
  owner_instance_id: string | null;
  restart_count: number;
  restarts_in_window: number;
  restart_window_started_at: string | null;
  last_restart_at: string | null;
  next_restart_at: string | null;
  last_heartbeat_at: string | null;
  resumed_at: string | null;
  last_policy_evaluation: string | null;
  failure_reason: string | null;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface TeamsTable {
  id: string;
  supervisor_id: string;
  name: string;
  objective: string | null;
  created_at: string;
  updated_at: string;
}

export interface TeamMembersTable {
  id: string;
  team_id: string;
  agent_id: string;
  role: string;
  joined_at: string;
  left_at: string | null;
}

export interface AgentsTable {
  id: string;
  name: string;
  status: string;
  control_url: string | null;
  metadata: string;
  /** Denormalised from the active membership so the heartbeat path needs no join. */
  team_id: string | null;
  supervisor_id: string | null;
  last_heartbeat_at: string | null;
  last_metrics: string | null;
  heartbeat_count: number;
  /** Heartbeats up to this count have been through policy evaluation (durable cursor). */
  evaluated_count: number;
  status_changed_at: string;
  created_at: string;
  updated_at: string;
}

export interface PoliciesTable {
  id: string;
  name: string;
  policy_type: string;
  description: string | null;
  active_version: number;
  latest_version: number;
  is_active: number;
  effectiveness: number;
  times_triggered: number;
  successes: number;
  failures: number;
  created_at: string;
  updated_at: string;
}

export interface PolicyVersionsTable {
  policy_id: string;
  version: number;
  definition: string;
  created_by: string | null;
  /** Token id of the author: the identity the four-eyes rule compares. */
  created_by_id: string | null;
  created_at: string;
}

export interface PolicyAssignmentsTable {
  supervisor_id: string;
  policy_id: string;
  priority: number;
  created_at: string;
}

export interface PolicyEvaluationsTable {
  id: Generated<number>;
  supervisor_id: string;
  agent_id: string | null;
  trigger: string;
  evaluated: number;
  matched: number;
  results: string;
  decision_paths: string;
  context: string;
  duration_us: number;
  at: string;
}

export interface InterventionsTable {
  id: string;
  supervisor_id: string;
  policy_id: string | null;
  policy_version: number | null;
  parent_intervention_id: string | null;
  intervention_type: string;
  target_type: string;
  target_id: string;
  reason: string;
  action_details: string;
  status: string;
  approval_required: number;
  requested_by: string | null;
  /** Token id of whoever asked for it (null for policy- and runtime-created ones). */
  requested_by_id: string | null;
  approved_by_id: string | null;
  approved_by: string | null;
  approved_at: string | null;
  rejected_by: string | null;
  rejected_reason: string | null;
  attempts: number;
  next_attempt_at: string | null;
  deadline_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  dedupe_key: string | null;
  outcome: string | null;
  error_message: string | null;
  created_at: string;
  updated_at: string;
}

export interface AlertGroupsTable {
  id: string;
  supervisor_id: string;
  correlation_key: string;
  kind: string;
  agent_id: string | null;
  severity: string;
  alert_count: number;
  first_at: string;
  last_at: string;
  window_ends_at: string;
  evaluated: number;
}

export interface AlertsTable {
  id: string;
  supervisor_id: string;
  group_id: string;
  source: string;
  severity: string;
  kind: string;
  agent_id: string | null;
  message: string | null;
  at: string;
}

export interface EventsTable {
  seq: Generated<number>;
  supervisor_id: string | null;
  entity_type: string;
  entity_id: string | null;
  type: string;
  actor: string | null;
  payload: string;
  at: string;
}

export interface TokensTable {
  id: string;
  name: string;
  role: string;
  agent_id: string | null;
  token_hash: string;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface Database {
  instances: InstancesTable;
  supervisors: SupervisorsTable;
  teams: TeamsTable;
  team_members: TeamMembersTable;
  agents: AgentsTable;
  policies: PoliciesTable;
  policy_versions: PolicyVersionsTable;
  policy_assignments: PolicyAssignmentsTable;
  policy_evaluations: PolicyEvaluationsTable;
  interventions: InterventionsTable;
  alert_groups: AlertGroupsTable;
  alerts: AlertsTable;
  events: EventsTable;
  tokens: TokensTable;
}
