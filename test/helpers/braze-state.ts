/** Who a cohort sync should leave in Braze, and who the Braze sandbox's state shows: tests compare the two. */
import type { Sandboxes } from '../../src/sandbox/sandboxes.js';

/** Identified cohort members, by external id: who Braze should show in the cohort. */
export function expectedMembers(sandboxes: Sandboxes, cohortId: string): Set<string> {
  const members = new Set<string>();
  for (const member of sandboxes.dataset.cohortMembers(cohortId)) if (member.userId) members.add(member.userId);
  return members;
}

/** Braze users whose `attribute` array holds the cohort id, read from the sandbox's state. */
export function brazeMembers(sandboxes: Sandboxes, cohortId: string, attribute = 'amplitude_cohorts'): Set<string> {
  const members = new Set<string>();
  for (const profile of sandboxes.braze.control.users()) {
    const value = profile.customAttributes?.get(attribute);
    if (Array.isArray(value) && value.includes(cohortId) && profile.externalId) members.add(profile.externalId);
  }
  return members;
}
