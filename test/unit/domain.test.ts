import { describe, expect, it } from 'vitest';
import {
  CONFIG_RANGES,
  DEFAULT_CONFIG,
  SUPERVISOR_COMMANDS,
  SUPERVISOR_STATUSES,
  backoffMs,
  canTransition,
  missedHeartbeats,
  restartsLeft,
  takeRestart,
  validateConfig,
  type SupervisorConfig,
  type SupervisorStatus,
} from '../../src/domain/supervisor.js';
import { isStale } from '../../src/domain/agent.js';
import { classifyHttpStatus, updateEffectiveness } from '../../src/domain/intervention.js';
import { uuidv7 } from '../../src/domain/time.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const S = 1000;

describe('supervisor state machine', () => {
  // The design's table, written out independently of the implementation.
  const LEGAL: [SupervisorStatus, SupervisorStatus][] = [
    ['SPAWNING', 'ACTIVE'],
    ['SPAWNING', 'FAILED'],
    ['ACTIVE', 'PAUSED'],
    ['ACTIVE', 'FAILED'],
    ['ACTIVE', 'UNRESPONSIVE'],
    ['ACTIVE', 'TERMINATED'],
    ['PAUSED', 'ACTIVE'],
    ['PAUSED', 'TERMINATED'],
    ['UNRESPONSIVE', 'ACTIVE'],
    ['UNRESPONSIVE', 'FAILED'],
    ['FAILED', 'ACTIVE'],
    ['FAILED', 'TERMINATED'],
  ];
  const legal = new Set(LEGAL.map(([a, b]) => `${a}->${b}`));
  const ILLEGAL = SUPERVISOR_STATUSES.flatMap((from) => SUPERVISOR_STATUSES.map((to) => [from, to] as [SupervisorStatus, SupervisorStatus])).filter(([a, b]) => !legal.has(`${a}->${b}`));

  it.each(LEGAL)('allows %s -> %s', (from, to) => {
    expect(canTransition(from, to)).toBe(true);
  });

  it.each(ILLEGAL)('rejects %s -> %s', (from, to) => {
    expect(canTransition(from, to)).toBe(false);
  });

  it('covers all 36 pairs: 12 legal, 24 illegal, including every self-transition and everything out of TERMINATED', () => {
    expect(LEGAL.length + ILLEGAL.length).toBe(36);
    expect(ILLEGAL.length).toBe(24);
    for (const s of SUPERVISOR_STATUSES) expect(canTransition(s, s)).toBe(false);
    for (const s of SUPERVISOR_STATUSES) expect(canTransition('TERMINATED', s)).toBe(false);
    for (const s of SUPERVISOR_STATUSES) expect(canTransition(s, 'SPAWNING')).toBe(false);
  });

  it('operator commands ask only for transitions the state machine allows', () => {
    expect(SUPERVISOR_COMMANDS).toEqual({
      start: { from: ['SPAWNING', 'FAILED'], to: 'ACTIVE' },
      pause: { from: ['ACTIVE'], to: 'PAUSED' },
      resume: { from: ['PAUSED'], to: 'ACTIVE' },
      stop: { from: ['ACTIVE', 'PAUSED', 'FAILED'], to: 'TERMINATED' },
    });
    for (const [name, rule] of Object.entries(SUPERVISOR_COMMANDS)) {
      for (const from of rule.from) expect(canTransition(from, rule.to), `${name}: ${from} -> ${rule.to}`).toBe(true);
    }
  });

  it('no command applies to a TERMINATED supervisor, and resume/pause only from their one status', () => {
    for (const rule of Object.values(SUPERVISOR_COMMANDS)) expect(rule.from as readonly string[]).not.toContain('TERMINATED');
    expect(SUPERVISOR_COMMANDS.resume.from as readonly string[]).not.toContain('ACTIVE');
    expect(SUPERVISOR_COMMANDS.pause.from as readonly string[]).not.toContain('PAUSED');
  });
});

describe('validateConfig', () => {
  const KEYS = Object.keys(CONFIG_RANGES) as (keyof SupervisorConfig)[];

  it('gives the documented defaults for undefined, null and {}', () => {
    const expected: SupervisorConfig = {
      heartbeat_interval_seconds: 30,
      policy_evaluation_interval_seconds: 10,
      agent_heartbeat_timeout_seconds: 90,
      alert_correlation_window_seconds: 300,
      max_hierarchy_depth: 5,
      intervention_timeout_seconds: 300,
      intervention_cooldown_seconds: 300,
      max_concurrent_interventions: 10,
      policy_learning_rate: 0.1,
      max_restarts: 5,
      restart_window_seconds: 300,
    };
    expect(DEFAULT_CONFIG).toEqual(expected);
    for (const input of [undefined, null, {}]) expect(validateConfig(input)).toEqual({ ok: true, value: expected });
  });

  it('does not alias the defaults object', () => {
    const r = validateConfig({});
    if (!r.ok) throw new Error('expected ok');
    r.value.max_restarts = 99;
    expect(DEFAULT_CONFIG.max_restarts).toBe(5);
  });

  const RANGES: [keyof SupervisorConfig, number, number][] = [
    ['heartbeat_interval_seconds', 1, 300],
    ['policy_evaluation_interval_seconds', 1, 60],
    ['agent_heartbeat_timeout_seconds', 3, 3600],
    ['alert_correlation_window_seconds', 10, 3600],
    ['max_hierarchy_depth', 1, 10],
    ['intervention_timeout_seconds', 5, 3600],
    ['intervention_cooldown_seconds', 0, 86400],
    ['max_concurrent_interventions', 1, 100],
    ['policy_learning_rate', 0.01, 0.5],
    ['max_restarts', 0, 100],
    ['restart_window_seconds', 10, 86400],
  ];

  it('knows exactly the documented keys', () => {
    expect(KEYS.sort()).toEqual(RANGES.map((r) => r[0]).sort());
  });

  describe.each(RANGES)('%s (%d..%d)', (key, min, max) => {
    const integer = key !== 'policy_learning_rate';
    const step = integer ? 1 : 0.001;

    it('accepts min and max and merges over the defaults', () => {
      for (const v of [min, max]) {
        const r = validateConfig({ [key]: v });
        expect(r).toEqual({ ok: true, value: { ...DEFAULT_CONFIG, [key]: v } });
      }
    });

    it('rejects one step below min and above max with the key path', () => {
      for (const v of [min - step, max + step]) {
        const r = validateConfig({ [key]: v });
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.problems).toEqual([{ path: `config.${key}`, message: `must be between ${min} and ${max}` }]);
      }
    });

    it('rejects non-numbers', () => {
      for (const v of [String(min), true, null, [min], { v: min }, NaN, Infinity, -Infinity]) {
        const r = validateConfig({ [key]: v });
        expect(r.ok, `${key}=${String(v)}`).toBe(false);
        if (!r.ok) expect(r.problems[0]).toEqual({ path: `config.${key}`, message: 'must be a number' });
      }
    });

    if (integer) {
      it('rejects non-integers', () => {
        const r = validateConfig({ [key]: min + 0.5 });
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.problems).toEqual([{ path: `config.${key}`, message: 'must be an integer' }]);
      });
    } else {
      it('accepts fractions inside the range', () => {
        expect(validateConfig({ [key]: 0.25 })).toEqual({ ok: true, value: { ...DEFAULT_CONFIG, [key]: 0.25 } });
      });
    }
  });

  it('rejects unknown keys, reporting each one and every other problem too', () => {
    const r = validateConfig({ heartbeat_interval_seconds: 0, bogus: 1, __proto__x: 2, max_restarts: 'five' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual(
      expect.arrayContaining([
        { path: 'config.heartbeat_interval_seconds', message: 'must be between 1 and 300' },
        { path: 'config.bogus', message: 'unknown config key' },
        { path: 'config.__proto__x', message: 'unknown config key' },
        { path: 'config.max_restarts', message: 'must be a number' },
      ]),
    );
    expect(r.problems).toHaveLength(4);
  });

  it('does not treat inherited Object.prototype names as config keys', () => {
    for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      const input = JSON.parse(`{"${key}": 5}`);
      const r = validateConfig(input);
      expect(r.ok, key).toBe(false);
      if (!r.ok) expect(r.problems).toEqual([{ path: `config.${key}`, message: 'unknown config key' }]);
    }
  });

  it('rejects non-objects: arrays, strings, numbers, booleans', () => {
    for (const v of [[], [1], 'x', 5, true]) {
      const r = validateConfig(v);
      expect(r).toEqual({ ok: false, problems: [{ path: 'config', message: 'must be an object' }] });
    }
  });

  it('merges a partial update over a given base and uses the given path', () => {
    const base = { ...DEFAULT_CONFIG, max_restarts: 2 };
    expect(validateConfig({ heartbeat_interval_seconds: 7 }, base)).toEqual({ ok: true, value: { ...base, heartbeat_interval_seconds: 7 } });
    expect(validateConfig({ x: 1 }, base, 'body.config')).toEqual({ ok: false, problems: [{ path: 'body.config.x', message: 'unknown config key' }] });
  });
});

describe('restart budget: takeRestart / restartsLeft', () => {
  const cfg = { max_restarts: 3, restart_window_seconds: 60 };
  const fresh = { restarts_in_window: 0, restart_window_started_at: null as number | null };

  it('opens a window at the first restart and counts restarts inside it', () => {
    const first = takeRestart(fresh, cfg, T0);
    expect(first).toEqual({ allowed: true, restarts_in_window: 1, restart_window_started_at: T0 });
    const second = takeRestart(first, cfg, T0 + 10 * S);
    expect(second).toEqual({ allowed: true, restarts_in_window: 2, restart_window_started_at: T0 });
    expect(restartsLeft(second, cfg, T0 + 10 * S)).toBe(1);
  });

  it('is exhausted after max_restarts in the window and stays exhausted until it ends', () => {
    let st = { ...fresh };
    for (let i = 0; i < 3; i++) {
      const r = takeRestart(st, cfg, T0 + i * S);
      expect(r.allowed).toBe(true);
      st = r;
    }
    expect(restartsLeft(st, cfg, T0 + 3 * S)).toBe(0);
    const denied = takeRestart(st, cfg, T0 + 59_999);
    expect(denied).toEqual({ allowed: false, restarts_in_window: 3, restart_window_started_at: T0 });
    expect(restartsLeft(st, cfg, T0 + 59_999)).toBe(0);
  });

  it('starts a new window once the old one has passed (exactly at its end)', () => {
    const st = { restarts_in_window: 3, restart_window_started_at: T0 };
    expect(restartsLeft(st, cfg, T0 + 60 * S)).toBe(3);
    expect(takeRestart(st, cfg, T0 + 60 * S)).toEqual({ allowed: true, restarts_in_window: 1, restart_window_started_at: T0 + 60 * S });
    expect(takeRestart(st, cfg, T0 + 3600 * S)).toEqual({ allowed: true, restarts_in_window: 1, restart_window_started_at: T0 + 3600 * S });
  });

  it('max_restarts 0 never allows a restart', () => {
    const zero = { max_restarts: 0, restart_window_seconds: 60 };
    expect(takeRestart(fresh, zero, T0).allowed).toBe(false);
    expect(takeRestart({ restarts_in_window: 0, restart_window_started_at: T0 - 3600 * S }, zero, T0).allowed).toBe(false);
    expect(restartsLeft(fresh, zero, T0)).toBe(0);
  });

  it('restartsLeft never goes negative when the config shrank below what was used', () => {
    expect(restartsLeft({ restarts_in_window: 5, restart_window_started_at: T0 }, { max_restarts: 2, restart_window_seconds: 60 }, T0 + S)).toBe(0);
    expect(takeRestart({ restarts_in_window: 5, restart_window_started_at: T0 }, { max_restarts: 2, restart_window_seconds: 60 }, T0 + S).allowed).toBe(false);
  });

  it('restartsLeft and takeRestart agree at every step of a run', () => {
    let st = { ...fresh };
    let now = T0;
    for (let i = 0; i < 20; i++) {
      const left = restartsLeft(st, cfg, now);
      const r = takeRestart(st, cfg, now);
      expect(r.allowed).toBe(left > 0);
      if (r.allowed) st = r;
      now += 7 * S;
    }
  });
});

describe('missedHeartbeats', () => {
  it('is 0 when nothing was ever recorded', () => {
    expect(missedHeartbeats(null, null, 10, T0)).toBe(0);
  });

  it('counts whole intervals since the last beat', () => {
    expect(missedHeartbeats(T0, null, 10, T0)).toBe(0);
    expect(missedHeartbeats(T0, null, 10, T0 + 9_999)).toBe(0);
    expect(missedHeartbeats(T0, null, 10, T0 + 10_000)).toBe(1);
    expect(missedHeartbeats(T0, null, 10, T0 + 45_000)).toBe(4);
  });

  it('measures from resumed_at when that is later than the last beat (downtime is not missed)', () => {
    const lastBeat = T0;
    const resumed = T0 + 3600 * S; // an hour of supervisor downtime
    expect(missedHeartbeats(lastBeat, resumed, 10, resumed + 5 * S)).toBe(0);
    expect(missedHeartbeats(lastBeat, resumed, 10, resumed + 25 * S)).toBe(2);
  });

  it('measures from the last beat when it is later than resumed_at', () => {
    expect(missedHeartbeats(T0 + 100 * S, T0, 10, T0 + 130 * S)).toBe(3);
    expect(missedHeartbeats(null, T0, 10, T0 + 30 * S)).toBe(3);
  });

  it('never goes negative when the beat is in the future (clock skew)', () => {
    expect(missedHeartbeats(T0 + 60 * S, null, 10, T0)).toBe(0);
  });
});

describe('isStale', () => {
  it('is stale only strictly after the timeout since the last heartbeat', () => {
    expect(isStale(T0, T0 - 1000 * S, null, 90, T0 + 90 * S)).toBe(false);
    expect(isStale(T0, T0 - 1000 * S, null, 90, T0 + 90 * S + 1)).toBe(true);
  });

  it('measures from registration when the agent never beat', () => {
    expect(isStale(null, T0, null, 30, T0 + 30 * S)).toBe(false);
    expect(isStale(null, T0, null, 30, T0 + 31 * S)).toBe(true);
  });

  it('never counts supervisor downtime: measures from resumed_at when that is latest', () => {
    const lastBeat = T0;
    const resumed = T0 + 24 * 3600 * S; // the supervisor was down a day
    expect(isStale(lastBeat, T0 - S, resumed, 90, resumed + 1)).toBe(false);
    expect(isStale(lastBeat, T0 - S, resumed, 90, resumed + 90 * S)).toBe(false);
    expect(isStale(lastBeat, T0 - S, resumed, 90, resumed + 90 * S + 1)).toBe(true);
  });

  it('a heartbeat after resume moves the reference forward again', () => {
    const resumed = T0;
    const beat = T0 + 60 * S;
    expect(isStale(beat, T0 - S, resumed, 90, T0 + 120 * S)).toBe(false);
    expect(isStale(beat, T0 - S, resumed, 90, T0 + 151 * S)).toBe(true);
  });
});

describe('backoffMs', () => {
  it('with random()=0 gives half the ceiling, with random()->1 the ceiling', () => {
    expect(backoffMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffMs(1, 1000, 60_000, () => 0.999999)).toBe(1000);
    expect(backoffMs(3, 1000, 60_000, () => 0)).toBe(2000);
    expect(backoffMs(3, 1000, 60_000, () => 0.5)).toBe(3000);
  });

  it('doubles per attempt until the cap and never exceeds it', () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 8].map((a) => backoffMs(a, 1000, 60_000, () => 0.999999999));
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
    for (const a of [7, 50, 1024, 5000]) {
      for (const r of [0, 0.3, 0.999999]) {
        const v = backoffMs(a, 1000, 60_000, () => r);
        expect(v).toBeGreaterThanOrEqual(30_000);
        expect(v).toBeLessThanOrEqual(60_000);
        expect(Number.isFinite(v)).toBe(true);
      }
    }
  });

  it('treats attempts below 1 like the first attempt', () => {
    expect(backoffMs(0, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffMs(-3, 1000, 60_000, () => 0)).toBe(500);
  });

  it('stays within [ceiling/2, ceiling] for any random value', () => {
    for (let a = 1; a <= 12; a++) {
      const ceiling = Math.min(10_000, 100 * 2 ** (a - 1));
      for (const r of [0, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999999]) {
        const v = backoffMs(a, 100, 10_000, () => r);
        expect(v).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        expect(v).toBeLessThanOrEqual(ceiling);
      }
    }
  });
});

describe('classifyHttpStatus', () => {
  it.each([200, 201, 202, 204, 299])('%d completes', (s) => expect(classifyHttpStatus(s)).toBe('completed'));
  it.each([400, 401, 403, 404, 409, 410, 413, 422, 499])('%d fails for good', (s) => expect(classifyHttpStatus(s)).toBe('failed'));
  it.each([408, 429, 500, 502, 503, 504, 599])('%d is retried', (s) => expect(classifyHttpStatus(s)).toBe('retry'));
});

describe('updateEffectiveness', () => {
  it('is an exponential moving average of outcomes', () => {
    expect(updateEffectiveness(0.5, true, 0.1)).toBeCloseTo(0.55, 12);
    expect(updateEffectiveness(0.5, false, 0.1)).toBeCloseTo(0.45, 12);
    expect(updateEffectiveness(0, true, 0.5)).toBeCloseTo(0.5, 12);
  });

  it('stays within [0, 1] and converges toward the observed outcome', () => {
    let e = 0.5;
    for (let i = 0; i < 500; i++) {
      e = updateEffectiveness(e, true, 0.1);
      expect(e).toBeGreaterThanOrEqual(0);
      expect(e).toBeLessThanOrEqual(1);
    }
    expect(e).toBeGreaterThan(0.999);
    for (let i = 0; i < 500; i++) e = updateEffectiveness(e, false, 0.5);
    expect(e).toBeLessThan(0.001);
    expect(e).toBeGreaterThanOrEqual(0);
  });
});

describe('uuidv7', () => {
  const FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('has the RFC 9562 layout: version 7, variant 10, 48-bit millisecond timestamp first', () => {
    const id = uuidv7(T0);
    expect(id).toMatch(FORMAT);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(T0);
  });

  it('sorts by creation time across milliseconds', () => {
    const ids = Array.from({ length: 200 }, (_, i) => uuidv7(T0 + i * 7));
    expect([...ids].sort()).toEqual(ids);
  });

  it('sorts by creation order within one millisecond, and never repeats', () => {
    const ids = Array.from({ length: 2000 }, () => uuidv7(T0 + 123_456));
    for (const id of ids) expect(id).toMatch(FORMAT);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('an id from a later millisecond sorts after a burst from an earlier one', () => {
    const burst = Array.from({ length: 100 }, () => uuidv7(T0 + 999_000));
    const later = uuidv7(T0 + 999_001);
    expect(burst.every((id) => id < later)).toBe(true);
  });
});
