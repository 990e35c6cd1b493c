/**
 * The typed client API for other services (and the `ampbraze` CLI, which is built on it). It needs only a
 * Temporal `Client`; credentials for Amplitude and Braze stay with the workers.
 */
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { DoctorReport } from '../activities/doctor.js';
import type { doctor } from '../workflows/index.js';
import { DEFAULT_TASK_QUEUE } from './config.js';

export { DEFAULT_TASK_QUEUE };

export interface RunDoctorOptions {
  taskQueue?: string;
  /** How long to wait for a worker to run the checks. */
  timeoutMs?: number;
}

export class NoWorkerError extends Error {
  override readonly name = 'NoWorkerError';
}

/** Runs the `doctor` workflow and waits for its report. */
export async function runDoctor(client: Client, options: RunDoctorOptions = {}): Promise<DoctorReport> {
  const taskQueue = options.taskQueue ?? DEFAULT_TASK_QUEUE;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const handle = await client.workflow.start<typeof doctor>('doctor', {
    taskQueue,
    workflowId: `doctor-${new Date().toISOString()}`,
    // A doctor run nobody picks up should not linger in the namespace.
    workflowExecutionTimeout: timeoutMs,
    staticSummary: 'Connectivity check: Temporal, state store, Amplitude, Braze',
  });
  try {
    return await handle.result();
  } catch (error) {
    if (!(await hasWorkflowPollers(client, taskQueue))) {
      throw new NoWorkerError(`No worker is polling task queue "${taskQueue}". Start one with \`npm run worker\`.`);
    }
    throw error;
  }
}

export async function hasWorkflowPollers(client: Client, taskQueue: string): Promise<boolean> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  return (response.pollers ?? []).length > 0;
}
