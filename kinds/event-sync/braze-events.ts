/**
 * Turns one page of staged events into `/users/track` requests of custom events (≤ the object limit each),
 * priced at one data point per event. Braze does not deduplicate events, so each request claims its events in
 * the sent-event ledger right before it goes and sends only those it got: an event reaches Braze at most once.
 * A request Braze answered with an error status delivered nothing, so its claims are released for a retry.
 */
import { DATA_POINTS_PER_EVENT } from '../../src/braze/data-points.js';
import type { PageRequest, SentChange } from '../../src/braze/page-request.js';
import { VendorError } from '../../src/errors.js';
import type { StagedEvent } from '../../src/store/store.js';

export interface EventLedger {
  /** Claims the events for the request `requestKey`; resolves with the keys it got. */
  claim(requestKey: string, eventKeys: readonly string[]): Promise<string[]>;
  release(requestKey: string): Promise<void>;
}

export interface EventRequest extends PageRequest {
  eventKeys: readonly string[];
}

export function eventPageRequests(events: readonly StagedEvent[], objectsPerRequest: number, ledger: EventLedger): EventRequest[] {
  const requests: EventRequest[] = [];
  for (let i = 0; i < events.length; i += objectsPerRequest) requests.push(eventRequest(events.slice(i, i + objectsPerRequest), ledger));
  return requests;
}

function eventRequest(events: readonly StagedEvent[], ledger: EventLedger): EventRequest {
  const eventKeys = events.map((event) => event.eventKey);
  return {
    firstKey: eventKeys[0]!,
    eventKeys,
    dataPoints: events.length * DATA_POINTS_PER_EVENT,
    async send(braze, requestKey): Promise<SentChange> {
      const claimed = new Set(await ledger.claim(requestKey, eventKeys));
      const sending = events.filter((event) => claimed.has(event.eventKey));
      if (sending.length === 0) return { accepted: [], rejected: [], dataPoints: 0 };
      let result;
      try {
        result = await braze.track({ events: sending.map((event) => event.body) });
      } catch (error) {
        if (error instanceof VendorError && error.status !== undefined && error.status >= 400) await ledger.release(requestKey);
        throw error;
      }
      const rejectedAt = new Map(result.events.rejected.map((rejected) => [rejected.index, rejected.reason]));
      const sent: SentChange = { accepted: [], rejected: [], dataPoints: 0 };
      sending.forEach((event, index) => {
        const reason = rejectedAt.get(index);
        if (reason === undefined) {
          sent.accepted.push(event.eventKey);
          sent.dataPoints += DATA_POINTS_PER_EVENT;
        } else {
          sent.rejected.push({ memberKey: event.eventKey, reason });
        }
      });
      return sent;
    },
  };
}
