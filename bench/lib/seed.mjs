/**
 * Building a fleet through the real server's API: agents, supervisors each with one team holding
 * its agents, and a set of 20 policies assigned to every supervisor.
 */
import { mapLimit } from './util.mjs';

/** Registers `count` agents; resolves their ids in creation order. */
export async function createAgents(api, count, { prefix = 'agent', controlUrl = null, concurrency = 16 } = {}) {
  const idx = Array.from({ length: count }, (_, i) => i);
  return mapLimit(idx, concurrency, async (i) => {
    const body = { name: `${prefix}-${i}`, metadata: { bench: true } };
    if (controlUrl) body.control_url = typeof controlUrl === 'function' ? controlUrl(i) : controlUrl;
    const r = await api.post('/agents', body, { expect: [201] });
    return r.body.id;
  });
}

export async function createSupervisor(api, name, config = {}) {
  const r = await api.post('/supervisors', { name, config }, { expect: [201] });
  return r.body;
}

export async function createTeam(api, supervisorId, name, agentIds) {
  const r = await api.post(`/supervisors/${supervisorId}/teams`, { name, agent_ids: agentIds }, { expect: [201] });
  return r.body;
}

const field = (f, operator, value) => ({ type: 'field_comparison', field: f, operator, value });
const all = (...conditions) => ({ type: 'composite', operator: 'AND', conditions });
const any = (...conditions) => ({ type: 'composite', operator: 'OR', conditions });
const not = (c) => ({ type: 'composite', operator: 'NOT', conditions: [c] });

/**
 * Twenty policies of the kinds an operator would write. With the metrics the benchmarks send
 * ({cpu: 0.5, anomaly_score: 0.1}) none of them matches, except the first when a heartbeat
 * carries the rare value anomaly_score >= 0.99: that one restarts the agent through its control
 * endpoint, so interventions flow at the rate the load generator chooses.
 */
export function policySet() {
  const notify = [{ type: 'notify', reason: 'agent ${agent.name} needs attention' }];
  const escalate = [{ type: 'escalate', reason: 'agent ${agent.id} escalated by policy' }];
  const defs = [
    ['rare-anomaly-restart', field('agent.metrics.anomaly_score', '>=', 0.99), [{ type: 'restart_agent', reason: 'anomaly ${agent.metrics.anomaly_score} on ${agent.name}' }]],
    ['cpu-hot', field('agent.metrics.cpu', '>', 0.95), notify],
    ['cpu-idle-long', all(field('agent.metrics.cpu', '<', 0.01), field('agent.seconds_since_heartbeat', '>', 30)), notify],
    ['anomaly-high', all(field('agent.metrics.anomaly_score', '>', 0.8), field('agent.metrics.cpu', '>', 0.8)), escalate],
    ['anomaly-mid-hot', any(all(field('agent.metrics.anomaly_score', '>', 0.6), field('agent.metrics.cpu', '>', 0.9)), field('agent.metrics.anomaly_score', '>', 0.97)), notify],
    ['stale-agent', all(field('event.type', '==', 'agent_stale'), field('agent.status', '==', 'STALE')), notify],
    ['silent-90s', field('agent.seconds_since_heartbeat', '>', 90), notify],
    ['error-rate', field('agent.metrics.error_rate', '>', 0.2), notify],
    ['memory', field('agent.metrics.memory_mb', '>', 8000), notify],
    ['queue-depth', field('agent.metrics.queue_depth', '>=', 10000), notify],
    ['latency', field('agent.metrics.latency_ms', '>', 5000), notify],
    ['bad-state', field('agent.metrics.state', 'in', ['crashed', 'wedged', 'oom']), escalate],
    ['restarting-too-long', all(field('agent.status', '==', 'RESTARTING'), field('agent.seconds_since_heartbeat', '>', 600)), escalate],
    ['quarantined-heartbeating', all(field('agent.status', '==', 'QUARANTINED'), field('agent.metrics.cpu', '>', 0.99)), notify],
    ['no-team', all(not(field('agent.team_id', 'exists', true)), field('event.type', '==', 'sweep')), notify],
    ['alert-critical', all(field('event.type', '==', 'alert_group'), field('event.alert.severity', '==', 'critical')), escalate],
    ['alert-storm', all(field('event.type', '==', 'alert_group'), field('event.alert.count', '>=', 50)), escalate],
    ['cpu-and-errors', all(field('agent.metrics.cpu', '>', 0.9), any(field('agent.metrics.error_rate', '>', 0.1), field('agent.metrics.latency_ms', '>', 2000))), notify],
    ['negative-cpu', field('agent.metrics.cpu', '<', 0), notify],
    ['version-blocklist', field('agent.metrics.version', 'in', ['0.0.1', '0.0.2']), notify],
  ];
  return defs.map(([name, condition, actions]) => ({ name, condition, actions }));
}

/** Creates the 20 policies; resolves their ids (the first is the rare-anomaly restart). */
export async function createPolicies(api, prefix = 'bench') {
  const ids = [];
  for (const p of policySet()) {
    const r = await api.post('/policies', { name: `${prefix}-${p.name}`, policy_type: 'INTERVENTION', definition: { condition: p.condition, actions: p.actions } }, { expect: [201] });
    ids.push(r.body.id);
  }
  return ids;
}

export async function assignPolicies(api, supervisorId, policyIds) {
  for (let i = 0; i < policyIds.length; i++) {
    await api.post(`/supervisors/${supervisorId}/policies`, { policy_id: policyIds[i], priority: 1000 - i }, { expect: [201] });
  }
}

/**
 * `supervisors` supervisors x `agentsPer` agents, each supervisor with one team holding its
 * agents; with `policyIds`, every supervisor gets those policies. Resolves the layout.
 *
 * Order matters for seeding time: policies are assigned while the supervisors have no agents yet,
 * because every assignment and team change makes every hosted supervisor reload (see
 * Runtime.policiesChanged), which is cheap only while they are empty.
 */
export async function seedFleet(api, { supervisors, agentsPer, policyIds = [], controlUrl = null, config = {}, concurrency = 16, prefix = 'fleet' }) {
  const sups = await mapLimit(Array.from({ length: supervisors }, (_, i) => i), Math.min(concurrency, 8), async (i) => {
    const sup = await createSupervisor(api, `${prefix}-sup-${i}`, config);
    if (policyIds.length) await assignPolicies(api, sup.id, policyIds);
    return sup;
  });
  const agentIds = await createAgents(api, supervisors * agentsPer, { prefix: `${prefix}-agent`, controlUrl, concurrency });
  return mapLimit(sups, Math.min(concurrency, 8), async (sup, i) => {
    const agents = agentIds.slice(i * agentsPer, (i + 1) * agentsPer);
    const team = await createTeam(api, sup.id, `${prefix}-team-${i}`, agents);
    return { supervisor_id: sup.id, team_id: team.id, agent_ids: agents };
  });
}
