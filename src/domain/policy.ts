// Policy language: validation, compilation and action planning. Pure (no I/O, clocks or randomness)
// because the same code backs API validation/simulation and the live supervisor loop.

/** Comparison operators accepted in a `field_comparison` condition. */
export const OPERATORS = ['==', '!=', '>', '>=', '<', '<=', 'in', 'not_in', 'exists'] as const;
/** One of {@link OPERATORS}. */
export type Operator = (typeof OPERATORS)[number];

/** Leaf condition: compares one context field against a literal. */
export interface FieldComparison { type: 'field_comparison'; field: string; operator: Operator; value?: unknown }

/** Boolean combination of child conditions. */
export interface Composite { type: 'composite'; operator: 'AND' | 'OR' | 'NOT'; conditions: Condition[] }

/** A policy condition tree. */
export type Condition = FieldComparison | Composite;

/** Actions a policy may request when its condition matches. */
export const ACTION_TYPES = [
  'restart_agent', 'quarantine_agent', 'restart_team', 'reassign_task', 'escalate', 'notify',
] as const;
/** One of {@link ACTION_TYPES}. */
export type ActionType = (typeof ACTION_TYPES)[number];

/** Maps a policy action to the intervention type it creates. */
export const ACTION_TO_INTERVENTION: Readonly<
  Record<ActionType, 'AGENT_RESTART' | 'AGENT_QUARANTINE' | 'TEAM_RESTART' | 'TASK_REASSIGN' | 'ESCALATE' | 'NOTIFY'>
> = Object.freeze({
  restart_agent: 'AGENT_RESTART', quarantine_agent: 'AGENT_QUARANTINE', restart_team: 'TEAM_RESTART',
  reassign_task: 'TASK_REASSIGN', escalate: 'ESCALATE', notify: 'NOTIFY',
});

/** One action of a policy; string fields other than `type` may contain `${path}` templates. */
export interface PolicyAction {
  type: ActionType;
  /** Template; defaults per action type (see {@link planActions}). Max 255 chars. */
  target?: string;
  approval_required?: boolean;
  /** Template, max 1024 chars. */
  reason?: string;
  /** Integer 0..3600; restart_team only. */
  stagger_seconds?: number;
  /** Free-form; string values are rendered as templates, recursively. Serialized size <= 4096. */
  params?: Record<string, unknown>;
}

/** A complete, validated policy body. */
export interface PolicyDefinition { condition: Condition; actions: PolicyAction[] }

/** A single validation failure, addressed by a path such as `definition.actions[0].type`. */
export interface ValidationProblem { path: string; message: string }

/** Deepest allowed condition nesting; the top-level condition is depth 1. */
export const MAX_CONDITION_DEPTH = 10;

const ROOTS: ReadonlySet<string> = new Set(['agent', 'team', 'supervisor', 'event']);
const SEGMENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;
// Deliberately decimal-only: Number() would also accept "0x1f" or "0b1", which no metric means.
const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const [MAX_FIELD, MAX_STRING, MAX_LIST, MAX_CHILDREN] = [255, 1024, 100, 50];
const [MAX_ACTIONS, MAX_PARAMS, MAX_STAGGER] = [10, 4096, 3600];

const FIELD_KEYS: ReadonlySet<string> = new Set(['type', 'field', 'operator', 'value']);
const COMPOSITE_KEYS: ReadonlySet<string> = new Set(['type', 'operator', 'conditions']);
const ACTION_KEYS: ReadonlySet<string> = new Set(['type', 'target', 'approval_required', 'reason', 'stagger_seconds', 'params']);
const DEFINITION_KEYS: ReadonlySet<string> = new Set(['condition', 'actions']);
// Keys the planner owns in action_details; params must not be able to spoof them.
const RESERVED_DETAILS = ['policy_id', 'policy_version', 'action', 'stagger_seconds'];

type Problems = ValidationProblem[];

/** JSON-quotes a user value for a message, bounded so junk input cannot bloat responses. */
function quote(v: unknown): string {
  const s = tryJson(v) ?? (typeof v === 'bigint' ? `${v}n` : typeof v);
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}

// JSON.stringify throws on bigint and cycles and returns undefined for functions; callers decide.
function tryJson(v: unknown): string | undefined {
  try { return JSON.stringify(v); } catch { return undefined; }
}

// Rejects class instances (Date, Map, ...) whose JSON form would not round-trip.
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function has(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function checkKeys(obj: Record<string, unknown>, allowed: ReadonlySet<string>, path: string, out: Problems): void {
  for (const key of Object.keys(obj)) if (!allowed.has(key)) out.push({ path: `${path}.${key}`, message: 'unknown key' });
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v === 'boolean' || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
}

function checkScalar(v: unknown, path: string, out: Problems): void {
  if (!isScalar(v)) out.push({ path, message: 'must be a string, finite number, boolean or null' });
  else if (typeof v === 'string' && v.length > MAX_STRING) out.push({ path, message: `must be at most ${MAX_STRING} characters` });
}

/** Returns a message when `ref` is not an allowed context path, else undefined. */
function refProblem(ref: string, what: string): string | undefined {
  const segments = ref.split('.');
  if (!segments.every((s) => SEGMENT.test(s))) return `invalid ${what} ${quote(ref)}`;
  if (!ROOTS.has(segments[0])) return `${what} ${quote(ref)} must start with agent, team, supervisor or event`;
  return undefined;
}

type TemplatePart = { text: string } | { ref: string };

/** Splits a template into literal text and `${ref}` parts; `unterminated` marks a dangling `${`. */
function parseTemplate(template: string): { parts: TemplatePart[]; unterminated: boolean } {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of template.matchAll(/\$\{([^}]*)\}/g)) {
    if (m.index > last) parts.push({ text: template.slice(last, m.index) });
    parts.push({ ref: m[1] });
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push({ text: template.slice(last) });
  return { parts, unterminated: template.includes('${', last) };
}

function checkTemplateString(v: unknown, max: number, path: string, out: Problems): void {
  if (typeof v !== 'string') return void out.push({ path, message: 'must be a string' });
  if (v.length > max) out.push({ path, message: `must be at most ${max} characters` });
  const { parts, unterminated } = parseTemplate(v);
  for (const part of parts) {
    const message = 'ref' in part ? refProblem(part.ref, 'template reference') : undefined;
    if (message) out.push({ path, message });
  }
  if (unterminated) out.push({ path, message: 'unterminated template "${"' });
}

function checkFieldComparison(c: Record<string, unknown>, path: string, out: Problems): void {
  checkKeys(c, FIELD_KEYS, path, out);
  const field = c.field;
  if (typeof field !== 'string' || field === '') {
    out.push({ path: `${path}.field`, message: field === undefined ? 'is required' : 'must be a non-empty string' });
  } else if (field.length > MAX_FIELD) {
    out.push({ path: `${path}.field`, message: `must be at most ${MAX_FIELD} characters` });
  } else {
    const message = refProblem(field, 'field path');
    if (message) out.push({ path: `${path}.field`, message });
  }

  const op = c.operator;
  const vPath = `${path}.value`;
  if (op === undefined) return void out.push({ path: `${path}.operator`, message: 'is required' });
  if (!(OPERATORS as readonly unknown[]).includes(op)) {
    return void out.push({ path: `${path}.operator`, message: `unknown operator ${quote(op)}` });
  }
  const value = c.value;
  if (op === 'exists') {
    if (value !== undefined && typeof value !== 'boolean') out.push({ path: vPath, message: 'must be a boolean' });
  } else if (value === undefined) {
    out.push({ path: vPath, message: 'is required' });
  } else if (op === '==' || op === '!=') {
    checkScalar(value, vPath, out);
  } else if (op === 'in' || op === 'not_in') {
    if (!Array.isArray(value) || value.length === 0) out.push({ path: vPath, message: 'must be a non-empty array' });
    else if (value.length > MAX_LIST) out.push({ path: vPath, message: `must have at most ${MAX_LIST} items` });
    else value.forEach((item: unknown, i) => checkScalar(item, `${vPath}[${i}]`, out));
  } else if (typeof value !== 'number' || !Number.isFinite(value)) {
    out.push({ path: vPath, message: 'must be a finite number' });
  }
}

function checkComposite(c: Record<string, unknown>, path: string, depth: number, out: Problems): void {
  checkKeys(c, COMPOSITE_KEYS, path, out);
  const op = c.operator;
  if (op !== 'AND' && op !== 'OR' && op !== 'NOT') {
    out.push({ path: `${path}.operator`, message: op === undefined ? 'is required' : `unknown operator ${quote(op)}` });
  }
  const list = c.conditions;
  const lPath = `${path}.conditions`;
  if (!Array.isArray(list)) {
    return void out.push({ path: lPath, message: list === undefined ? 'is required' : 'must be an array' });
  }
  if (op === 'NOT' && list.length !== 1) out.push({ path: lPath, message: 'NOT takes exactly one condition' });
  else if (list.length === 0) out.push({ path: lPath, message: 'must not be empty' });
  else if (list.length > MAX_CHILDREN) out.push({ path: lPath, message: `must have at most ${MAX_CHILDREN} conditions` });
  list.forEach((child: unknown, i) => checkCondition(child, `${lPath}[${i}]`, depth + 1, out));
}

function checkCondition(c: unknown, path: string, depth: number, out: Problems): void {
  // Checked before anything else so hostile deep input costs O(depth limit), not O(input depth).
  if (depth > MAX_CONDITION_DEPTH) return void out.push({ path, message: `nesting deeper than ${MAX_CONDITION_DEPTH}` });
  if (!isPlainObject(c)) return void out.push({ path, message: 'must be an object' });
  if (c.type === 'field_comparison') checkFieldComparison(c, path, out);
  else if (c.type === 'composite') checkComposite(c, path, depth, out);
  else {
    out.push({ path: `${path}.type`, message: c.type === undefined ? 'is required' : `unknown condition type ${quote(c.type)}` });
  }
}

function checkAction(a: unknown, path: string, out: Problems): void {
  if (!isPlainObject(a)) return void out.push({ path, message: 'must be an object' });
  checkKeys(a, ACTION_KEYS, path, out);
  const type = a.type;
  if (type === undefined) out.push({ path: `${path}.type`, message: 'is required' });
  else if (!(ACTION_TYPES as readonly unknown[]).includes(type)) {
    out.push({ path: `${path}.type`, message: `unknown action type ${quote(type)}` });
  }
  if (a.target !== undefined) checkTemplateString(a.target, MAX_FIELD, `${path}.target`, out);
  if (a.reason !== undefined) checkTemplateString(a.reason, MAX_STRING, `${path}.reason`, out);
  if (a.approval_required !== undefined && typeof a.approval_required !== 'boolean') {
    out.push({ path: `${path}.approval_required`, message: 'must be a boolean' });
  }
  const stagger = a.stagger_seconds;
  const sPath = `${path}.stagger_seconds`;
  if (stagger !== undefined && type !== 'restart_team') out.push({ path: sPath, message: 'only allowed on restart_team' });
  if (stagger !== undefined && !(typeof stagger === 'number' && Number.isInteger(stagger) && stagger >= 0 && stagger <= MAX_STAGGER)) {
    out.push({ path: sPath, message: `must be an integer between 0 and ${MAX_STAGGER}` });
  }
  if (a.params !== undefined) {
    const pPath = `${path}.params`;
    if (!isPlainObject(a.params)) return void out.push({ path: pPath, message: 'must be a plain object' });
    const json = tryJson(a.params);
    if (json === undefined) out.push({ path: pPath, message: 'must be JSON-serializable' });
    else if (json.length > MAX_PARAMS) out.push({ path: pPath, message: `serialized size must be at most ${MAX_PARAMS} characters` });
  }
}

/**
 * Validates untrusted input as a policy definition, collecting every problem with its path.
 * Never throws. On success returns a JSON-clean copy so callers cannot alias the input.
 */
export function validatePolicyDefinition(input: unknown, path = 'definition'):
  { ok: true; value: PolicyDefinition } | { ok: false; problems: ValidationProblem[] } {
  const problems: Problems = [];
  try {
    if (!isPlainObject(input)) {
      problems.push({ path, message: 'must be an object' });
    } else {
      checkKeys(input, DEFINITION_KEYS, path, problems);
      if (input.condition === undefined) problems.push({ path: `${path}.condition`, message: 'is required' });
      else checkCondition(input.condition, `${path}.condition`, 1, problems);
      const actions = input.actions;
      const aPath = `${path}.actions`;
      if (actions === undefined) problems.push({ path: aPath, message: 'is required' });
      else if (!Array.isArray(actions)) problems.push({ path: aPath, message: 'must be an array' });
      else {
        if (actions.length === 0) problems.push({ path: aPath, message: 'must contain at least one action' });
        if (actions.length > MAX_ACTIONS) problems.push({ path: aPath, message: `must have at most ${MAX_ACTIONS} actions` });
        actions.forEach((a: unknown, i) => checkAction(a, `${aPath}[${i}]`, problems));
      }
    }
    if (problems.length > 0) return { ok: false, problems };
    return { ok: true, value: JSON.parse(JSON.stringify(input)) as PolicyDefinition };
  } catch {
    // Only reachable through exotic objects (throwing getters, proxies); still must not throw.
    problems.push({ path, message: 'could not be read' });
    return { ok: false, problems };
  }
}

/** Kind of event that triggered an evaluation. */
export type EventType = 'heartbeat' | 'agent_stale' | 'alert_group' | 'sweep';

/** Everything a condition or template may refer to. */
export interface PolicyContext {
  agent?: {
    id: string; name: string; status: string; team_id: string | null;
    seconds_since_heartbeat: number | null; metrics: Record<string, number | string>;
  };
  team?: { id: string; name: string; objective: string | null; member_count: number } | null;
  supervisor: { id: string; name: string; status: string; hierarchy_level: number; parent_id: string | null };
  event: { type: EventType; [k: string]: unknown };
}

/** One evaluated node, for explaining why a policy did or did not match. */
export interface DecisionStep {
  /** Condition path relative to the policy, e.g. `condition.conditions[0]`. */
  path: string;
  kind: 'field_comparison' | 'composite';
  operator: string;
  /** Present on field comparisons; `actual` is undefined when the field is missing. */
  field?: string; expected?: unknown; actual?: unknown;
  result: boolean;
  /** Why a comparison failed for a reason other than the values differing. */
  note?: string;
}

/** Outcome of evaluating a condition, with the steps actually evaluated, in order. */
export interface Decision { matched: boolean; path: DecisionStep[] }

/** A condition compiled to a function of the context. */
export type CompiledCondition = (ctx: PolicyContext) => Decision;

type Node = (ctx: unknown, steps: DecisionStep[]) => boolean;

// Own properties only: a field like "agent.constructor" must not reach Object.prototype.
function walk(value: unknown, segments: readonly string[]): unknown {
  let cur = value;
  for (const seg of segments) {
    if (typeof cur !== 'object' || cur === null || !has(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/** Resolve a dot path ("agent.metrics.anomaly_score") in the context; undefined when absent. */
export function resolvePath(ctx: unknown, path: string): unknown {
  return walk(ctx, path.split('.'));
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && NUMERIC.test(v.trim())) return Number(v.trim());
  return undefined;
}

/** Strict scalar equality, except that metrics reported as numeric strings match numbers. */
function scalarEquals(actual: unknown, expected: unknown): boolean {
  if (actual === expected) return true;
  if (typeof actual === 'number' && typeof expected === 'string') return actual === toNumber(expected);
  if (typeof actual === 'string' && typeof expected === 'number') return toNumber(actual) === expected;
  return false;
}

const ORDERING: Readonly<Record<string, (a: number, b: number) => boolean>> = {
  '>': (a, b) => a > b, '>=': (a, b) => a >= b, '<': (a, b) => a < b, '<=': (a, b) => a <= b,
};

function compileField(c: FieldComparison, path: string): Node {
  const segments = Object.freeze(c.field.split('.'));
  const { field, operator, value: raw } = c;
  const expected: unknown =
    operator === 'exists' ? (typeof raw === 'boolean' ? raw : true) : Array.isArray(raw) ? Object.freeze([...raw]) : raw;
  const list: readonly unknown[] = Array.isArray(expected) ? expected : [];
  const bound = typeof expected === 'number' ? expected : NaN;

  let test: (actual: unknown) => boolean | undefined;
  const order = has(ORDERING, operator) ? ORDERING[operator] : undefined;
  if (order) {
    // undefined signals "not a number" so the step can say why it failed.
    test = (a) => { const n = toNumber(a); return n === undefined ? undefined : order(n, bound); };
  } else if (operator === 'exists') test = (a) => (a !== undefined && a !== null) === expected;
  else if (operator === '==') test = (a) => scalarEquals(a, expected);
  else if (operator === '!=') test = (a) => !scalarEquals(a, expected);
  else if (operator === 'in') test = (a) => list.some((e) => scalarEquals(a, e));
  else if (operator === 'not_in') test = (a) => !list.some((e) => scalarEquals(a, e));
  else test = () => undefined;
  const note = order ? 'not a number' : 'invalid operator';

  return (ctx, steps) => {
    const actual = walk(ctx, segments);
    const outcome = test(actual);
    const step: DecisionStep = { path, kind: 'field_comparison', operator, field, expected, actual, result: outcome === true };
    if (outcome === undefined) step.note = note;
    steps.push(step);
    return step.result;
  };
}

function compileNode(c: Condition, path: string): Node {
  if (c?.type === 'field_comparison' && typeof c.field === 'string') return compileField(c, path);
  const loose = c as Partial<Composite> | null | undefined;
  const operator = String(loose?.operator);
  const list = Array.isArray(loose?.conditions) ? loose.conditions : [];
  const kids = list.map((k, i) => compileNode(k, `${path}.conditions[${i}]`));
  const composite = loose?.type === 'composite';
  let evaluate: Node | undefined;
  // every/some stop at the deciding child, which is what keeps skipped children out of the path.
  if (composite && operator === 'AND') evaluate = (ctx, steps) => kids.every((k) => k(ctx, steps));
  else if (composite && operator === 'OR') evaluate = (ctx, steps) => kids.some((k) => k(ctx, steps));
  else if (composite && operator === 'NOT' && kids.length === 1) evaluate = (ctx, steps) => !kids[0](ctx, steps);
  if (!evaluate) {
    // Unvalidated input (the casts above exist for it): fail closed rather than throw in the supervisor loop.
    return (_ctx, steps) => {
      steps.push({ path, kind: 'composite', operator, result: false, note: 'invalid condition' });
      return false;
    };
  }
  const run = evaluate;
  return (ctx, steps) => {
    const result = run(ctx, steps);
    steps.push({ path, kind: 'composite', operator, result });
    return result;
  };
}

/** Compile once per policy version; the returned function is pure and deterministic. */
export function compileCondition(condition: Condition): CompiledCondition {
  const root = compileNode(condition, 'condition');
  return (ctx) => {
    const path: DecisionStep[] = [];
    const matched = root(ctx, path);
    return { matched, path };
  };
}

function stringify(v: unknown): string {
  if (typeof v === 'string') return v;
  return typeof v === 'object' ? (tryJson(v) ?? '') : String(v);
}

/**
 * Render "${agent.id}"-style templates; unknown references render as empty string and are reported.
 * Null values are reported too, since they render empty just the same; an unterminated `${` is kept literally.
 */
export function renderTemplate(template: string, ctx: PolicyContext): { value: string; missing: string[] } {
  const missing: string[] = [];
  let value = '';
  for (const part of parseTemplate(template).parts) {
    if ('text' in part) {
      value += part.text;
      continue;
    }
    const resolved = resolvePath(ctx, part.ref);
    if (resolved === undefined || resolved === null) missing.push(part.ref);
    else value += stringify(resolved);
  }
  return { value, missing };
}

/** A concrete intervention a matched policy would create. */
export interface PlannedAction {
  action: ActionType; intervention_type: string; target_type: 'AGENT' | 'TEAM'; target_id: string | null;
  reason: string; approval_required: boolean; action_details: Record<string, unknown>;
  /** Non-fatal planning issues (missing template references, no target); empty when clean. */
  problems: string[];
}

function render(template: string, ctx: PolicyContext, where: string, problems: string[]): string {
  const r = renderTemplate(template, ctx);
  for (const ref of r.missing) problems.push(`unresolved template reference ${quote(ref)} in ${where}`);
  return r.value;
}

function renderParams(value: unknown, ctx: PolicyContext, where: string, problems: string[]): unknown {
  if (typeof value === 'string') return render(value, ctx, where, problems);
  if (Array.isArray(value)) return value.map((v, i) => renderParams(v, ctx, `${where}[${i}]`, problems));
  if (!isPlainObject(value)) return value;
  // fromEntries defines own properties, so a "__proto__" key stays data instead of a prototype swap.
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderParams(v, ctx, `${where}.${k}`, problems)]));
}

type PolicyRef = { id: string; name: string; version: number };

function planOne(a: PolicyAction, ctx: PolicyContext, policy: PolicyRef): PlannedAction {
  const problems: string[] = [];
  const broadcast = a.type === 'escalate' || a.type === 'notify';
  const teamScoped = a.type === 'restart_team';
  const target_type: 'AGENT' | 'TEAM' = teamScoped || (broadcast && !ctx.agent) ? 'TEAM' : 'AGENT';

  // Default targets name no template the author wrote, so only the resulting "no target" is reported.
  const fallback = target_type === 'TEAM' ? ctx.team?.id : ctx.agent?.id;
  let target_id: string | null =
    a.target !== undefined ? render(a.target, ctx, 'target', problems) : typeof fallback === 'string' ? fallback : null;
  if (!target_id) {
    target_id = null;
    problems.push('no target');
  }

  const reason = a.reason !== undefined
    ? render(a.reason, ctx, 'reason', problems)
    : `policy "${policy.name}" v${policy.version} matched on ${stringify(ctx.event?.type)}`;

  const params = a.params ? (renderParams(a.params, ctx, 'params', problems) as Record<string, unknown>) : {};
  for (const key of RESERVED_DETAILS) {
    if (!has(params, key)) continue;
    problems.push(`params.${key} ignored: reserved key`);
    delete params[key];
  }
  const action_details: Record<string, unknown> = { ...params, policy_id: policy.id, policy_version: policy.version, action: a.type };
  if (a.stagger_seconds !== undefined) action_details.stagger_seconds = a.stagger_seconds;

  const approval_required = a.approval_required ?? false;
  const intervention_type = ACTION_TO_INTERVENTION[a.type];
  return { action: a.type, intervention_type, target_type, target_id, reason, approval_required, action_details, problems };
}

/** Turn a matched policy's actions into the interventions they would create (pure; used by simulate and by the runtime). */
export function planActions(def: PolicyDefinition, ctx: PolicyContext, policy: PolicyRef): PlannedAction[] {
  return def.actions.map((a) => planOne(a, ctx, policy));
}
