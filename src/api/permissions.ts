/**
 * Who may call what. One table, keyed by "METHOD /route"; a route under /api/v1 without an entry
 * refuses to register, so nothing is reachable by accident.
 */
import type { Role } from '../runtime/services/tokens.js';

const READ: readonly Role[] = ['admin', 'operator', 'viewer'];
const OPERATE: readonly Role[] = ['admin', 'operator'];
const ADMIN: readonly Role[] = ['admin'];
const INGEST: readonly Role[] = ['admin', 'operator', 'agent'];

export const PERMISSIONS: Readonly<Record<string, readonly Role[]>> = {
  'GET /api/v1/supervisors': READ,
  'POST /api/v1/supervisors': OPERATE,
  'GET /api/v1/supervisors/:id': READ,
  'PUT /api/v1/supervisors/:id': OPERATE,
  'DELETE /api/v1/supervisors/:id': OPERATE,
  'POST /api/v1/supervisors/:id/start': OPERATE,
  'POST /api/v1/supervisors/:id/pause': OPERATE,
  'POST /api/v1/supervisors/:id/resume': OPERATE,
  'POST /api/v1/supervisors/:id/stop': OPERATE,
  'GET /api/v1/supervisors/:id/health': READ,
  'GET /api/v1/supervisors/:id/hierarchy': READ,
  'GET /api/v1/supervisors/:id/teams': READ,
  'POST /api/v1/supervisors/:id/teams': OPERATE,
  'GET /api/v1/supervisors/:id/policies': READ,
  'POST /api/v1/supervisors/:id/policies': ADMIN,
  'DELETE /api/v1/supervisors/:id/policies/:policyId': ADMIN,
  'GET /api/v1/supervisors/:id/interventions': READ,
  'GET /api/v1/supervisors/:id/alerts': READ,
  'GET /api/v1/supervisors/:id/evaluations': READ,
  'GET /api/v1/teams/:id': READ,
  'POST /api/v1/teams/:id/members': OPERATE,
  'DELETE /api/v1/teams/:id/members/:agentId': OPERATE,
  'GET /api/v1/agents': READ,
  'POST /api/v1/agents': OPERATE,
  'GET /api/v1/agents/:id': READ,
  'DELETE /api/v1/agents/:id': OPERATE,
  'POST /api/v1/agents/:id/heartbeat': INGEST,
  'POST /api/v1/agents/:id/release': OPERATE,
  'GET /api/v1/policies': READ,
  'POST /api/v1/policies': ADMIN,
  'GET /api/v1/policies/:id': READ,
  'PUT /api/v1/policies/:id': ADMIN,
  'GET /api/v1/policies/:id/versions': READ,
  'POST /api/v1/policies/:id/activate': ADMIN,
  'POST /api/v1/policies/:id/simulate': READ,
  'POST /api/v1/interventions': OPERATE,
  'GET /api/v1/interventions/:id': READ,
  'PUT /api/v1/interventions/:id/approve': OPERATE,
  'PUT /api/v1/interventions/:id/reject': OPERATE,
  'POST /api/v1/alerts': INGEST,
  'GET /api/v1/events': READ,
  'GET /api/v1/audit': OPERATE,
  'GET /api/v1/tokens': ADMIN,
  'POST /api/v1/tokens': ADMIN,
  'DELETE /api/v1/tokens/:id': ADMIN,
};

export const permissionKey = (method: string, url: string): string => `${method.toUpperCase()} ${url}`;
