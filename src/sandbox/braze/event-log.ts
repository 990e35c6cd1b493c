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

export class EventLog {
  private readonly events: LoggedEvent[] = [];
  /** The same events by external_id, so per-user reads stay cheap in a log of 100,000s. */
  private readonly byExternalId = new Map<string, LoggedEvent[]>();

  get size(): number {
    return this.events.length;
  }

  record(event: LoggedEvent): void {
    this.events.push(event);
    if ('external_id' in event) {
      const userEvents = this.byExternalId.get(event.external_id) ?? [];
      this.byExternalId.set(event.external_id, userEvents);
      userEvents.push(event);
    }
  }

  /** In the order Braze recorded them. */
  list({ name, externalId }: EventFilter = {}): LoggedEvent[] {
    const candidates = externalId === undefined ? this.events : (this.byExternalId.get(externalId) ?? []);
    return name === undefined ? [...candidates] : candidates.filter((event) => event.name === name);
  }
}
