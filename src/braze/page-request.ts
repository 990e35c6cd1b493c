/** The unit every sync kind's apply step sends: one priced Braze request that maps Braze's answer back to its keys. */
import type { MemberFailure } from '../store/store.js';
import type { BrazeClient } from './client.js';

/** What Braze did with one request: the keys it accepted, the ones it rejected (with its reason), the points billed. */
export interface SentChange {
  accepted: string[];
  rejected: MemberFailure[];
  dataPoints: number;
}

/**
 * The Braze endpoints a page request calls. The engine paces `track` by the workspace's shared limit right before
 * each call: a slot taken earlier (before the ledger write) could arrive in the next window, over its limit.
 */
export type BrazeEndpoints = Pick<BrazeClient, 'track' | 'updatePartnerCohortUsers'>;

export interface PageRequest {
  /** The first key it carries: a stable name for the request within its page. */
  firstKey: string;
  /** What the request costs if Braze accepts everything in it. */
  dataPoints: number;
  /** Sends it; `requestKey` names this send in the request ledger. */
  send(braze: BrazeEndpoints, requestKey: string): Promise<SentChange>;
}
