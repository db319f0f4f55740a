/** The webhook actuator: POSTs an intervention to an agent's control endpoint. */
import { classifyHttpStatus } from '../domain/intervention.js';
import type { Intervention } from '../store/interventions.js';

export type ActuatorResult =
  | { kind: 'completed'; outcome: unknown }
  | { kind: 'failed'; error: string }
  | { kind: 'retry'; error: string };

export const MAX_REQUEST_MS = 10_000;

/** Delivers one attempt. The intervention id is the idempotency key of every attempt. */
export async function deliverWebhook(url: string, i: Intervention, agentId: string, timeoutMs: number, signal?: AbortSignal): Promise<ActuatorResult> {
  const timeout = AbortSignal.timeout(Math.max(1, Math.min(MAX_REQUEST_MS, timeoutMs)));
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': i.id, 'user-agent': 'overseer' },
      body: JSON.stringify({
        intervention_id: i.id,
        type: i.intervention_type,
        supervisor_id: i.supervisor_id,
        agent_id: agentId,
        reason: i.reason,
        action_details: i.action_details,
      }),
      signal: combined,
      redirect: 'manual',
    });
    const text = await res.text().catch(() => '');
    const verdict = classifyHttpStatus(res.status);
    if (verdict === 'completed') {
      let outcome: unknown = { http_status: res.status };
      if (text) {
        try {
          outcome = JSON.parse(text);
        } catch {
          outcome = { http_status: res.status, body: text.slice(0, 1024) };
        }
      }
      return { kind: 'completed', outcome };
    }
    const error = `control endpoint answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    return verdict === 'retry' ? { kind: 'retry', error } : { kind: 'failed', error };
  } catch (err) {
    if (signal?.aborted) return { kind: 'retry', error: 'interrupted by shutdown' };
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const detail = timeout.aborted ? `timed out after ${timeoutMs} ms` : e.cause?.code ?? e.cause?.message ?? e.message;
    return { kind: 'retry', error: `control endpoint unreachable: ${detail}` };
  }
}
