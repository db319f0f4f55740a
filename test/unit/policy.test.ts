import { describe, it, expect } from 'vitest';
import {
  ACTION_TO_INTERVENTION,
  ACTION_TYPES,
  MAX_CONDITION_DEPTH,
  OPERATORS,
  compileCondition,
  planActions,
  renderTemplate,
  resolvePath,
  validatePolicyDefinition,
  type Condition,
  type PolicyContext,
  type PolicyDefinition,
} from '../../src/domain/policy.js';

const fc = (field: string, operator: string, value?: unknown): Record<string, unknown> =>
  value === undefined ? { type: 'field_comparison', field, operator } : { type: 'field_comparison', field, operator, value };
const comp = (operator: string, conditions: unknown[]): Record<string, unknown> => ({ type: 'composite', operator, conditions });
const okCond = fc('agent.status', '==', 'error');
const okAction = { type: 'restart_agent' };
const def = (condition: unknown, actions: unknown = [okAction]): Record<string, unknown> => ({ condition, actions });

function nestNot(levels: number): unknown {
  let c: unknown = okCond;
  for (let i = 1; i < levels; i++) c = comp('NOT', [c]);
  return c;
}
const deepPath = (depth: number): string => 'definition.condition' + '.conditions[0]'.repeat(depth - 1);

function problemsOf(input: unknown): Array<{ path: string; message: string }> {
  const r = validatePolicyDefinition(input);
  return r.ok ? [] : r.problems;
}

describe('validatePolicyDefinition: malformed definitions', () => {
  // Each row: input, and the exact [path, message] problems expected (order matters).
  const rows: Array<[string, unknown, Array<[string, string]>]> = [
    ['null', null, [['definition', 'must be an object']]],
    ['array', [], [['definition', 'must be an object']]],
    ['string', 'policy', [['definition', 'must be an object']]],
    ['number', 42, [['definition', 'must be an object']]],
    ['missing condition', { actions: [okAction] }, [['definition.condition', 'is required']]],
    ['missing actions', { condition: okCond }, [['definition.actions', 'is required']]],
    ['empty actions', def(okCond, []), [['definition.actions', 'must contain at least one action']]],
    ['actions not array', def(okCond, { type: 'notify' }), [['definition.actions', 'must be an array']]],
    ['11 actions', def(okCond, Array(11).fill(okAction)), [['definition.actions', 'must have at most 10 actions']]],
    ['unknown top-level key', { ...def(okCond), foo: 1 }, [['definition.foo', 'unknown key']]],
    ['condition not object', def([okCond]), [['definition.condition', 'must be an object']]],
    ['unknown condition type', def({ type: 'regex' }), [['definition.condition.type', 'unknown condition type "regex"']]],
    ['missing condition type', def({ field: 'agent.id' }), [['definition.condition.type', 'is required']]],
    ['unknown operator "=>" in nested', def(comp('AND', [okCond, fc('agent.x', '=>', 1)])),
      [['definition.condition.conditions[1].operator', 'unknown operator "=>"']]],
    ['missing operator', def({ type: 'field_comparison', field: 'agent.id', value: 1 }), [['definition.condition.operator', 'is required']]],
    ['> with string value', def(fc('agent.metrics.x', '>', '5')), [['definition.condition.value', 'must be a finite number']]],
    ['>= with NaN', def(fc('agent.metrics.x', '>=', NaN)), [['definition.condition.value', 'must be a finite number']]],
    ['< without value', def(fc('agent.metrics.x', '<')), [['definition.condition.value', 'is required']]],
    ['== with object', def(fc('agent.id', '==', { a: 1 })), [['definition.condition.value', 'must be a string, finite number, boolean or null']]],
    ['== with long string', def(fc('agent.id', '==', 'x'.repeat(1025))), [['definition.condition.value', 'must be at most 1024 characters']]],
    ['in with non-array', def(fc('agent.status', 'in', 'error')), [['definition.condition.value', 'must be a non-empty array']]],
    ['in with empty array', def(fc('agent.status', 'in', [])), [['definition.condition.value', 'must be a non-empty array']]],
    ['not_in with 101 items', def(fc('agent.status', 'not_in', Array(101).fill('a'))), [['definition.condition.value', 'must have at most 100 items']]],
    ['in with bad element', def(fc('agent.status', 'in', ['a', [1]])), [['definition.condition.value[1]', 'must be a string, finite number, boolean or null']]],
    ['exists with non-boolean', def(fc('agent.id', 'exists', 'yes')), [['definition.condition.value', 'must be a boolean']]],
    ['NOT with two conditions', def(comp('NOT', [okCond, okCond])), [['definition.condition.conditions', 'NOT takes exactly one condition']]],
    ['AND with zero conditions', def(comp('AND', [])), [['definition.condition.conditions', 'must not be empty']]],
    ['OR with 51 conditions', def(comp('OR', Array(51).fill(okCond))), [['definition.condition.conditions', 'must have at most 50 conditions']]],
    ['composite without conditions', def({ type: 'composite', operator: 'OR' }), [['definition.condition.conditions', 'is required']]],
    ['composite bad operator', def(comp('XOR', [okCond])), [['definition.condition.operator', 'unknown operator "XOR"']]],
    ['depth 11', def(nestNot(11)), [[deepPath(11), 'nesting deeper than 10']]],
    ['unknown key on field_comparison', def({ ...okCond, weight: 2 }), [['definition.condition.weight', 'unknown key']]],
    ['unknown key on composite', def({ ...comp('OR', [okCond]), label: 'x' }), [['definition.condition.label', 'unknown key']]],
    ['unknown key on action', def(okCond, [{ type: 'notify', when: 'now' }]), [['definition.actions[0].when', 'unknown key']]],
    ['bad field path', def(fc('agent..id', 'exists')), [['definition.condition.field', 'invalid field path "agent..id"']]],
    ['field segment starting with digit', def(fc('agent.1x', 'exists')), [['definition.condition.field', 'invalid field path "agent.1x"']]],
    ['unknown root segment', def(fc('process.env', 'exists')),
      [['definition.condition.field', 'field path "process.env" must start with agent, team, supervisor or event']]],
    ['empty field', def(fc('', 'exists')), [['definition.condition.field', 'must be a non-empty string']]],
    ['field over 255 chars', def(fc('agent.' + 'a'.repeat(250), 'exists')), [['definition.condition.field', 'must be at most 255 characters']]],
    ['bad action type', def(okCond, [{ type: 'reboot_universe' }]), [['definition.actions[0].type', 'unknown action type "reboot_universe"']]],
    ['action not object', def(okCond, [okAction, 'notify']), [['definition.actions[1]', 'must be an object']]],
    ['stagger_seconds on quarantine', def(okCond, [{ type: 'quarantine_agent', stagger_seconds: 5 }]),
      [['definition.actions[0].stagger_seconds', 'only allowed on restart_team']]],
    ['negative stagger', def(okCond, [{ type: 'restart_team', stagger_seconds: -1 }]),
      [['definition.actions[0].stagger_seconds', 'must be an integer between 0 and 3600']]],
    ['fractional stagger', def(okCond, [{ type: 'restart_team', stagger_seconds: 1.5 }]),
      [['definition.actions[0].stagger_seconds', 'must be an integer between 0 and 3600']]],
    ['stagger too large', def(okCond, [{ type: 'restart_team', stagger_seconds: 3601 }]),
      [['definition.actions[0].stagger_seconds', 'must be an integer between 0 and 3600']]],
    ['bad template root', def(okCond, [{ type: 'notify', reason: 'hi ${process.env.SECRET}' }]),
      [['definition.actions[0].reason', 'template reference "process.env.SECRET" must start with agent, team, supervisor or event']]],
    ['unterminated template', def(okCond, [{ type: 'notify', target: '${agent.id' }]),
      [['definition.actions[0].target', 'unterminated template "${"']]],
    ['empty template reference', def(okCond, [{ type: 'notify', target: 'x${}' }]),
      [['definition.actions[0].target', 'invalid template reference ""']]],
    ['target not string', def(okCond, [{ type: 'notify', target: 7 }]), [['definition.actions[0].target', 'must be a string']]],
    ['target too long', def(okCond, [{ type: 'notify', target: 'a'.repeat(256) }]), [['definition.actions[0].target', 'must be at most 255 characters']]],
    ['reason too long', def(okCond, [{ type: 'notify', reason: 'a'.repeat(1025) }]), [['definition.actions[0].reason', 'must be at most 1024 characters']]],
    ['approval_required not boolean', def(okCond, [{ type: 'notify', approval_required: 'yes' }]),
      [['definition.actions[0].approval_required', 'must be a boolean']]],
    ['oversized params', def(okCond, [{ type: 'notify', params: { blob: 'x'.repeat(4090) } }]),
      [['definition.actions[0].params', 'serialized size must be at most 4096 characters']]],
    ['params array', def(okCond, [{ type: 'notify', params: [1] }]), [['definition.actions[0].params', 'must be a plain object']]],
    ['params with bigint', def(okCond, [{ type: 'notify', params: { n: 1n } }]), [['definition.actions[0].params', 'must be JSON-serializable']]],
    ['long bad operator is truncated', def(fc('agent.id', 'x'.repeat(100), 1)),
      [['definition.condition.operator', `unknown operator "${'x'.repeat(58)}…`]]],
  ];

  it.each(rows)('%s', (_name, input, expected) => {
    const result = validatePolicyDefinition(input);
    expect(result.ok).toBe(false);
    expect(problemsOf(input).map((p) => [p.path, p.message])).toEqual(expected);
  });

  it('collects every problem across all levels in one pass', () => {
    const input = {
      condition: comp('AND', [fc('agent.x', '=>', 1), { ...fc('bogus.y', '>', 'a'), z: 1 }]),
      actions: [{ type: 'quarantine_agent', stagger_seconds: -3 }, { type: 'nope' }],
      extra: true,
    };
    expect(problemsOf(input)).toEqual([
      { path: 'definition.extra', message: 'unknown key' },
      { path: 'definition.condition.conditions[0].operator', message: 'unknown operator "=>"' },
      { path: 'definition.condition.conditions[1].z', message: 'unknown key' },
      { path: 'definition.condition.conditions[1].field', message: 'field path "bogus.y" must start with agent, team, supervisor or event' },
      { path: 'definition.condition.conditions[1].value', message: 'must be a finite number' },
      { path: 'definition.actions[0].stagger_seconds', message: 'only allowed on restart_team' },
      { path: 'definition.actions[0].stagger_seconds', message: 'must be an integer between 0 and 3600' },
      { path: 'definition.actions[1].type', message: 'unknown action type "nope"' },
    ]);
  });

  it('uses the caller-supplied root path', () => {
    const r = validatePolicyDefinition({ condition: okCond }, 'body.definition');
    expect(r).toEqual({ ok: false, problems: [{ path: 'body.definition.actions', message: 'is required' }] });
  });

  it('does not descend past the depth limit even for very deep junk', () => {
    expect(problemsOf(def(nestNot(5000)))).toEqual([{ path: deepPath(11), message: 'nesting deeper than 10' }]);
  });

  it('never throws on hostile input', () => {
    const hostile = Object.defineProperty({}, 'condition', { enumerable: true, get: () => { throw new Error('boom'); } });
    const inputs: unknown[] = [undefined, 0, true, Symbol('s'), () => 1, new Date(0), Object.create(null), hostile, { condition: 1n, actions: [null] }];
    for (const input of inputs) expect(() => validatePolicyDefinition(input)).not.toThrow();
    expect(problemsOf(hostile)).toEqual([{ path: 'definition', message: 'could not be read' }]);
  });
});

describe('validatePolicyDefinition: valid definitions', () => {
  it('accepts depth exactly 10, 50 children, 100 list items, stagger bounds and every action type', () => {
    const input = {
      condition: comp('AND', [nestNot(MAX_CONDITION_DEPTH - 1), comp('OR', Array(50).fill(okCond)), fc('event.alert.kind', 'in', Array(100).fill('k'))]),
      actions: [
        ...ACTION_TYPES.filter((t) => t !== 'restart_team').map((type) => ({ type })),
        { type: 'restart_team', stagger_seconds: 0, target: 'team-${team.id}', reason: '${event.type}', approval_required: true, params: { a: '${agent.id}' } },
      ],
    };
    const r = validatePolicyDefinition(input);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value).toEqual(input);
      expect(r.value).not.toBe(input);
    }
  });

  it('accepts exists without value and == null', () => {
    expect(validatePolicyDefinition(def(comp('OR', [fc('team', 'exists'), fc('agent.team_id', '==', null)]))).ok).toBe(true);
  });
});

const baseCtx: PolicyContext = {
  agent: {
    id: 'a-1', name: 'worker', status: 'error', team_id: 't-1', seconds_since_heartbeat: 90,
    metrics: { anomaly_score: 0.93, queue: '12', label: 'hot', errs: 'n/a' },
  },
  team: { id: 't-1', name: 'crawlers', objective: null, member_count: 4 },
  supervisor: { id: 's-1', name: 'root', status: 'ACTIVE', hierarchy_level: 0, parent_id: null },
  event: { type: 'alert_group', alert: { kind: 'latency', severity: 'critical', count: 3, group_id: 'g-9' } },
};

describe('compileCondition: operators', () => {
  // [description, field, operator, value, expected result, expected note]
  const rows: Array<[string, string, string, unknown, boolean, string | undefined]> = [
    ['== string present', 'agent.status', '==', 'error', true, undefined],
    ['== string differs', 'agent.status', '==', 'ok', false, undefined],
    ['== missing', 'agent.metrics.nope', '==', 'x', false, undefined],
    ['== missing vs null is strict', 'agent.metrics.nope', '==', null, false, undefined],
    ['== null present', 'supervisor.parent_id', '==', null, true, undefined],
    ['== numeric string vs number', 'agent.metrics.queue', '==', 12, true, undefined],
    ['== number vs numeric string', 'agent.seconds_since_heartbeat', '==', '90', true, undefined],
    ['== number vs non-numeric string', 'agent.seconds_since_heartbeat', '==', 'ninety', false, undefined],
    ['== boolean vs string is strict', 'agent.status', '==', true, false, undefined],
    ['== object actual', 'event.alert', '==', 'x', false, undefined],
    ['!= differs', 'agent.status', '!=', 'ok', true, undefined],
    ['!= equal', 'agent.status', '!=', 'error', false, undefined],
    ['!= missing is true', 'agent.metrics.nope', '!=', 'x', true, undefined],
    ['!= numeric string equal', 'agent.metrics.queue', '!=', 12, false, undefined],
    ['> number', 'agent.metrics.anomaly_score', '>', 0.9, true, undefined],
    ['> equal is false', 'event.alert.count', '>', 3, false, undefined],
    ['>= equal', 'event.alert.count', '>=', 3, true, undefined],
    ['< numeric string', 'agent.metrics.queue', '<', 13, true, undefined],
    ['<= numeric string false', 'agent.metrics.queue', '<=', 11, false, undefined],
    ['> missing', 'agent.metrics.nope', '>', 0, false, 'not a number'],
    ['< null', 'supervisor.parent_id', '<', 1, false, 'not a number'],
    ['>= wrong-typed string', 'agent.metrics.errs', '>=', 0, false, 'not a number'],
    ['<= object', 'event.alert', '<=', 0, false, 'not a number'],
    ['in present', 'agent.status', 'in', ['stale', 'error'], true, undefined],
    ['in absent value', 'agent.status', 'in', ['stale'], false, undefined],
    ['in numeric string', 'agent.metrics.queue', 'in', [1, 12], true, undefined],
    ['in missing', 'agent.metrics.nope', 'in', ['a'], false, undefined],
    ['not_in absent value', 'agent.status', 'not_in', ['ok'], true, undefined],
    ['not_in present', 'agent.status', 'not_in', ['error'], false, undefined],
    ['not_in missing is true', 'agent.metrics.nope', 'not_in', ['a'], true, undefined],
    ['exists present', 'agent.id', 'exists', undefined, true, undefined],
    ['exists missing', 'agent.metrics.nope', 'exists', undefined, false, undefined],
    ['exists null', 'team.objective', 'exists', undefined, false, undefined],
    ['exists false on missing', 'agent.metrics.nope', 'exists', false, true, undefined],
    ['exists false on present', 'agent.id', 'exists', false, false, undefined],
    ['deep event path', 'event.alert.severity', '==', 'critical', true, undefined],
    ['prototype keys are not fields', 'agent.constructor', 'exists', undefined, false, undefined],
  ];

  it.each(rows)('%s', (_name, field, operator, value, result, note) => {
    const decision = compileCondition(fc(field, operator, value) as unknown as Condition)(baseCtx);
    const expectedValue = operator === 'exists' ? (value ?? true) : value;
    const step: Record<string, unknown> = {
      path: 'condition', kind: 'field_comparison', operator, field, expected: expectedValue,
      actual: resolvePath(baseCtx, field), result,
    };
    if (note) step.note = note;
    expect(decision).toStrictEqual({ matched: result, path: [step] });
  });

  it('covers every operator in the table', () => {
    const used = new Set(rows.map((r) => r[2]));
    expect([...OPERATORS].filter((o) => !used.has(o))).toEqual([]);
  });

  it('evaluates a missing agent and null team as missing fields', () => {
    const ctx: PolicyContext = { supervisor: baseCtx.supervisor, event: { type: 'sweep' }, team: null };
    const run = (c: unknown): boolean => compileCondition(c as Condition)(ctx).matched;
    expect(run(fc('agent.id', 'exists'))).toBe(false);
    expect(run(fc('team.id', 'not_in', ['t-1']))).toBe(true);
    expect(run(fc('team', 'exists', false))).toBe(true);
  });
});

describe('compileCondition: composites and decision paths', () => {
  const yes = fc('agent.status', '==', 'error');
  const no = fc('agent.status', '==', 'ok');
  const step = (path: string, result: boolean) => ({ path, result });
  const summarize = (c: unknown, ctx = baseCtx) => {
    const d = compileCondition(c as Condition)(ctx);
    return { matched: d.matched, steps: d.path.map((s) => step(s.path, s.result)), ops: d.path.map((s) => s.operator) };
  };

  const rows: Array<[string, unknown, boolean, Array<{ path: string; result: boolean }>]> = [
    ['AND all true', comp('AND', [yes, yes]), true,
      [step('condition.conditions[0]', true), step('condition.conditions[1]', true), step('condition', true)]],
    ['AND short-circuits after first false', comp('AND', [no, yes, yes]), false,
      [step('condition.conditions[0]', false), step('condition', false)]],
    ['OR short-circuits after first true', comp('OR', [no, yes, no]), true,
      [step('condition.conditions[0]', false), step('condition.conditions[1]', true), step('condition', true)]],
    ['OR all false', comp('OR', [no, no]), false,
      [step('condition.conditions[0]', false), step('condition.conditions[1]', false), step('condition', false)]],
    ['NOT inverts true', comp('NOT', [yes]), false, [step('condition.conditions[0]', true), step('condition', false)]],
    ['NOT inverts false', comp('NOT', [no]), true, [step('condition.conditions[0]', false), step('condition', true)]],
    ['nested AND(OR(no, NOT(no)), no) records in evaluation order',
      comp('AND', [comp('OR', [no, comp('NOT', [no])]), no]), false, [
        step('condition.conditions[0].conditions[0]', false),
        step('condition.conditions[0].conditions[1].conditions[0]', false),
        step('condition.conditions[0].conditions[1]', true),
        step('condition.conditions[0]', true),
        step('condition.conditions[1]', false),
        step('condition', false),
      ]],
    ['nested OR(AND(yes, no), NOT(AND(no, yes)))',
      comp('OR', [comp('AND', [yes, no]), comp('NOT', [comp('AND', [no, yes])])]), true, [
        step('condition.conditions[0].conditions[0]', true),
        step('condition.conditions[0].conditions[1]', false),
        step('condition.conditions[0]', false),
        step('condition.conditions[1].conditions[0].conditions[0]', false),
        step('condition.conditions[1].conditions[0]', false),
        step('condition.conditions[1]', true),
        step('condition', true),
      ]],
  ];

  it.each(rows)('%s', (_name, cond, matched, steps) => {
    const s = summarize(cond);
    expect(s.matched).toBe(matched);
    expect(s.steps).toEqual(steps);
  });

  it('records composite steps with kind and operator only', () => {
    const d = compileCondition(comp('NOT', [no]) as unknown as Condition)(baseCtx);
    expect(d.path[1]).toStrictEqual({ path: 'condition', kind: 'composite', operator: 'NOT', result: true });
  });

  it('is deterministic and independent between calls', () => {
    const cond = comp('AND', [fc('agent.metrics.queue', '>', 5), comp('OR', [no, fc('event.alert.kind', 'in', ['latency'])])]);
    const compiled = compileCondition(cond as unknown as Condition);
    const first = compiled(baseCtx);
    const second = compiled(baseCtx);
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    expect(second.path).not.toBe(first.path);
    expect(compileCondition(cond as unknown as Condition)(baseCtx)).toEqual(first);
    expect(first.matched).toBe(true);
    expect(first.path).toHaveLength(5);
  });

  it('reflects context changes without recompiling and is immune to later edits of the source JSON', () => {
    const cond = fc('agent.status', 'in', ['error']);
    const compiled = compileCondition(cond as unknown as Condition);
    (cond.value as string[]).push('ok');
    cond.field = 'agent.name';
    const okCtx: PolicyContext = { ...baseCtx, agent: { ...baseCtx.agent!, status: 'ok' } };
    expect(compiled(baseCtx).matched).toBe(true);
    expect(compiled(okCtx).matched).toBe(false);
  });

  it.each([
    ['NOT without child', { type: 'composite', operator: 'NOT', conditions: [] }, 'NOT'],
    ['field without field', { type: 'field_comparison', operator: '==', value: 1 }, '=='],
    ['unknown type', { type: 'regex' }, 'undefined'],
    ['null', null, 'undefined'],
  ])('fails closed on an unvalidated condition (%s) instead of throwing', (_name, cond, operator) => {
    const d = compileCondition(cond as unknown as Condition)(baseCtx);
    expect(d).toEqual({ matched: false, path: [{ path: 'condition', kind: 'composite', operator, result: false, note: 'invalid condition' }] });
  });

  it('notes an unknown field operator instead of throwing', () => {
    const d = compileCondition(fc('agent.id', '~=', 'a') as unknown as Condition)(baseCtx);
    expect(d.matched).toBe(false);
    expect(d.path[0].note).toBe('invalid operator');
  });
});

describe('resolvePath and renderTemplate', () => {
  it.each([
    ['agent.metrics.anomaly_score', 0.93],
    ['event.alert.group_id', 'g-9'],
    ['team.objective', null],
    ['agent.metrics.missing', undefined],
    ['agent.id.length', undefined],
    ['agent.__proto__', undefined],
    ['nothing', undefined],
  ])('resolvePath(%s)', (path, expected) => {
    expect(resolvePath(baseCtx, path)).toBe(expected);
  });

  it('resolvePath tolerates non-object roots', () => {
    expect(resolvePath(null, 'a.b')).toBeUndefined();
    expect(resolvePath('str', 'length')).toBeUndefined();
  });

  it.each([
    ['agent ${agent.id} in ${team.name}', 'agent a-1 in crawlers', []],
    ['${event.alert.count}x ${agent.metrics.anomaly_score}', '3x 0.93', []],
    ['no templates', 'no templates', []],
    ['[${agent.nope}] [${team.objective}]', '[] []', ['agent.nope', 'team.objective']],
    ['${event.alert}', '{"kind":"latency","severity":"critical","count":3,"group_id":"g-9"}', []],
    ['tail ${agent.id', 'tail ${agent.id', []],
    ['$ {agent.id} and $${agent.id}', '$ {agent.id} and $a-1', []],
  ])('renderTemplate(%s)', (template, value, missing) => {
    expect(renderTemplate(template, baseCtx)).toEqual({ value, missing });
  });
});

describe('planActions', () => {
  const policy = { id: 'p-1', name: 'hot agents', version: 3 };
  const plan = (actions: unknown[], ctx: PolicyContext = baseCtx) =>
    planActions({ condition: okCond, actions } as unknown as PolicyDefinition, ctx, policy);
  const defaultReason = 'policy "hot agents" v3 matched on alert_group';
  const details = (action: string, extra: Record<string, unknown> = {}) => ({ policy_id: 'p-1', policy_version: 3, action, ...extra });

  it('maps every action type to its intervention', () => {
    expect(ACTION_TO_INTERVENTION).toEqual({
      restart_agent: 'AGENT_RESTART', quarantine_agent: 'AGENT_QUARANTINE', restart_team: 'TEAM_RESTART',
      reassign_task: 'TASK_REASSIGN', escalate: 'ESCALATE', notify: 'NOTIFY',
    });
  });

  it.each([
    ['restart_agent', 'AGENT_RESTART', 'AGENT', 'a-1'],
    ['quarantine_agent', 'AGENT_QUARANTINE', 'AGENT', 'a-1'],
    ['reassign_task', 'TASK_REASSIGN', 'AGENT', 'a-1'],
    ['restart_team', 'TEAM_RESTART', 'TEAM', 't-1'],
    ['escalate', 'ESCALATE', 'AGENT', 'a-1'],
    ['notify', 'NOTIFY', 'AGENT', 'a-1'],
  ])('defaults for %s', (type, intervention, targetType, targetId) => {
    expect(plan([{ type }])).toEqual([{
      action: type, intervention_type: intervention, target_type: targetType, target_id: targetId,
      reason: defaultReason, approval_required: false, action_details: details(type), problems: [],
    }]);
  });

  it('escalate/notify fall back to the team, then to no target', () => {
    const teamOnly: PolicyContext = { supervisor: baseCtx.supervisor, team: baseCtx.team, event: { type: 'sweep' } };
    const nothing: PolicyContext = { supervisor: baseCtx.supervisor, team: null, event: { type: 'sweep' } };
    expect(plan([{ type: 'escalate' }], teamOnly).map((p) => [p.target_type, p.target_id, p.problems, p.reason]))
      .toEqual([['TEAM', 't-1', [], 'policy "hot agents" v3 matched on sweep']]);
    expect(plan([{ type: 'notify' }], nothing).map((p) => [p.target_type, p.target_id, p.problems]))
      .toEqual([['TEAM', null, ['no target']]]);
  });

  it('reports no target when the default reference is absent', () => {
    const noTeam: PolicyContext = { ...baseCtx, team: null };
    expect(plan([{ type: 'restart_team' }], noTeam).map((p) => [p.target_type, p.target_id, p.problems]))
      .toEqual([['TEAM', null, ['no target']]]);
    const noAgent: PolicyContext = { supervisor: baseCtx.supervisor, event: { type: 'sweep' } };
    expect(plan([{ type: 'quarantine_agent' }], noAgent).map((p) => [p.target_type, p.target_id, p.problems]))
      .toEqual([['AGENT', null, ['no target']]]);
  });

  it('renders target, reason and params templates recursively', () => {
    const [p] = plan([{
      type: 'notify', target: '${agent.name}', reason: '${agent.name} scored ${agent.metrics.anomaly_score}',
      params: { channel: 'ops-${team.name}', nested: { list: ['${event.alert.kind}', 5, true, null] }, n: 1 },
    }]);
    expect(p).toEqual({
      action: 'notify', intervention_type: 'NOTIFY', target_type: 'AGENT', target_id: 'worker',
      reason: 'worker scored 0.93', approval_required: false,
      action_details: details('notify', { channel: 'ops-crawlers', nested: { list: ['latency', 5, true, null] }, n: 1 }),
      problems: [],
    });
  });

  it('reports missing template references and an empty rendered target', () => {
    const [p] = plan([{ type: 'restart_agent', target: '${agent.metrics.nope}', reason: 'why: ${event.alert.nope}', params: { x: ['${team.objective}'] } }]);
    expect(p.target_id).toBeNull();
    expect(p.reason).toBe('why: ');
    expect(p.action_details).toEqual(details('restart_agent', { x: [''] }));
    expect(p.problems).toEqual([
      'unresolved template reference "agent.metrics.nope" in target',
      'no target',
      'unresolved template reference "event.alert.nope" in reason',
      'unresolved template reference "team.objective" in params.x[0]',
    ]);
  });

  it('keeps a partially rendered target but still reports the missing reference', () => {
    const [p] = plan([{ type: 'restart_agent', target: 'agent-${agent.nope}' }]);
    expect([p.target_id, p.problems]).toEqual(['agent-', ['unresolved template reference "agent.nope" in target']]);
  });

  it('honours approval_required and stagger_seconds', () => {
    const plans = plan([
      { type: 'restart_team', stagger_seconds: 30, approval_required: true },
      { type: 'restart_team', stagger_seconds: 0 },
      { type: 'quarantine_agent', approval_required: false },
    ]);
    expect(plans.map((p) => [p.approval_required, p.action_details])).toEqual([
      [true, details('restart_team', { stagger_seconds: 30 })],
      [false, details('restart_team', { stagger_seconds: 0 })],
      [false, details('quarantine_agent')],
    ]);
  });

  it('does not let params override planner-owned detail keys', () => {
    const [p] = plan([{ type: 'notify', params: { policy_id: 'evil', action: 'restart_team', stagger_seconds: 1, keep: 'me' } }]);
    expect(p.action_details).toEqual(details('notify', { keep: 'me' }));
    expect(p.problems).toEqual([
      'params.policy_id ignored: reserved key',
      'params.action ignored: reserved key',
      'params.stagger_seconds ignored: reserved key',
    ]);
  });

  it('keeps a "__proto__" params key as plain data', () => {
    const params = JSON.parse('{"__proto__": {"polluted": "${agent.id}"}}') as Record<string, unknown>;
    const [p] = plan([{ type: 'notify', params }]);
    expect(Object.getPrototypeOf(p.action_details)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(p.action_details, '__proto__')?.value).toEqual({ polluted: 'a-1' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('is pure: same inputs give deep-equal plans and inputs are not mutated', () => {
    const actions = [{ type: 'notify', params: { a: '${agent.id}' } }, { type: 'restart_team', stagger_seconds: 10 }];
    const snapshot = JSON.stringify({ actions, baseCtx });
    const first = plan(actions);
    expect(plan(actions)).toEqual(first);
    expect(JSON.stringify({ actions, baseCtx })).toBe(snapshot);
    expect(first).toHaveLength(2);
  });
});
