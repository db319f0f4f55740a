/** Prometheus metrics, one registry per process. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly supervisorsByStatus = new Gauge({ name: 'overseer_supervisors', help: 'Supervisors by status', labelNames: ['status'], registers: [this.registry] });
  readonly interventionsByStatus = new Gauge({ name: 'overseer_interventions', help: 'Interventions by status', labelNames: ['status'], registers: [this.registry] });
  readonly agentsByStatus = new Gauge({ name: 'overseer_agents', help: 'Agents by status', labelNames: ['status'], registers: [this.registry] });
  readonly evaluationSeconds = new Histogram({
    name: 'overseer_policy_evaluation_seconds',
    help: 'Time to evaluate and commit one batch of policy evaluations',
    labelNames: ['trigger'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly evaluations = new Counter({ name: 'overseer_policy_evaluations_total', help: 'Policy evaluations recorded', labelNames: ['matched'], registers: [this.registry] });
  readonly recoverySeconds = new Gauge({ name: 'overseer_recovery_duration_seconds', help: 'Duration of the last boot recovery', registers: [this.registry] });
  readonly storeSeconds = new Histogram({
    name: 'overseer_store_latency_seconds',
    help: 'Round-trip time of the store health query',
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly supervisorRestarts = new Counter({ name: 'overseer_supervisor_restarts_total', help: 'In-process supervisor restarts', registers: [this.registry] });
  readonly interventionsFinished = new Counter({ name: 'overseer_interventions_finished_total', help: 'Interventions reaching a final state in this process', labelNames: ['type', 'status'], registers: [this.registry] });
  readonly webhookLatency = new Histogram({ name: 'overseer_control_request_seconds', help: 'Agent control endpoint request time', labelNames: ['result'], buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10], registers: [this.registry] });
  readonly heartbeats = new Counter({ name: 'overseer_agent_heartbeats_total', help: 'Agent heartbeats committed', registers: [this.registry] });
  readonly heartbeatCommitSeconds = new Histogram({
    name: 'overseer_heartbeat_commit_seconds',
    help: 'Heartbeat received to committed, together with the policy decision taken on it (trigger to decision)',
    buckets: [0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly heartbeatBatch = new Histogram({ name: 'overseer_heartbeat_batch_size', help: 'Heartbeats per group commit', buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500], registers: [this.registry] });
  readonly loopFailures = new Counter({ name: 'overseer_loop_failures_total', help: 'Failed loop iterations', labelNames: ['loop'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'overseer_' });
  }
}
