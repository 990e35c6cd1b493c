/** Every custom event the sandbox recorded on a profile, as it was sent: what a test reads back an event sync by. */
import type { UserAlias } from './json-values.js';
import type { Identifier } from './profiles.js';

/** The identifier the event was sent with, as in the event object: one of these. */
export type SentIdentifier =
  | { external_id: string }
  | { user_alias: UserAlias }
  | { braze_id: string }
  | { email: string }
  | { phone: string }
  | { device_id: string };

export type LoggedEvent = SentIdentifier & {
  name: string;
  /** ISO-8601 as stored: a time in the future is clamped to when the event arrived. */
  time: string;
  /** As sent (`{}` when none were). */
  properties: Record<string, unknown>;
  app_id?: string;
};

export interface EventFilter {
  name?: string;
  externalId?: string;
}

export function sentIdentifier(identifier: Identifier): SentIdentifier {
  if (identifier.kind === 'user_alias') return { user_alias: identifier.alias };
  return { [identifier.kind]: identifier.value } as SentIdentifier;
}

/** A recorded event with when it arrived (ms since the epoch): what a benchmark measures latency to. */
export interface ArrivedEvent {
  event: LoggedEvent;
  arrivedAtMs: number;
}

export class EventLog {
  private readonly events: LoggedEvent[] = [];
  private readonly arrivedAtMs: number[] = [];
  /** The same events by external_id, so per-user reads stay cheap in a log of 100,000s. */
  private readonly byExternalId = new Map<string, LoggedEvent[]>();

  get size(): number {
    return this.events.length;
  }

  record(event: LoggedEvent, arrivedAtMs = Date.now()): void {
    this.events.push(event);
    this.arrivedAtMs.push(arrivedAtMs);
    if ('external_id' in event) {
      const userEvents = this.byExternalId.get(event.external_id) ?? [];
      this.byExternalId.set(event.external_id, userEvents);
      userEvents.push(event);
    }
  }

  /** The events recorded from the `from`-th on (0-based), at most `limit`, with when each arrived. */
  arrivals(from: number, limit: number): ArrivedEvent[] {
    return this.events.slice(from, from + limit).map((event, index) => ({ event, arrivedAtMs: this.arrivedAtMs[from + index]! }));
  }

  /** In the order Braze recorded them. */
  list({ name, externalId }: EventFilter = {}): LoggedEvent[] {
    const candidates = externalId === undefined ? this.events : (this.byExternalId.get(externalId) ?? []);
    return name === undefined ? [...candidates] : candidates.filter((event) => event.name === name);
  }
}
