// The branches this sign-in may see, from GET /api/branches ({id, name, timezone, manage}):
// each visit's and alert's times are shown in its branch's zone. Until the list has come
// (or when it cannot be had) a branch's zone is unknown and the browser's zone stands in.

import { browserZone } from './time.js';

let known = new Map();

export function setBranches(list) {
  known = new Map((list ?? []).map((b) => [b.id, b]));
}

export function knownBranchIds() {
  return [...known.keys()];
}

/** The branch's IANA zone, or undefined (the browser's zone) when not known. */
export function branchZone(id) {
  return known.get(id)?.timezone || undefined;
}

/** "North (B1)", or the id alone when the branch has no other name. */
export function branchLabel(id) {
  const name = known.get(id)?.name;
  return name && name !== id ? `${name} (${id})` : id;
}

/**
 * The zone of the board as a whole (its axis, now-line, day and chart) for the branches
 * shown: theirs when they share one; the first's when they do not (each visit still shows
 * its own branch's times); the browser's when none is known.
 */
export function boardZone(ids) {
  const zones = [...new Set(ids.map(branchZone).filter(Boolean))];
  return { zone: zones[0], mixed: zones.length > 1 };
}

/** What the header says about the zone times are in (empty when it is the browser's own). */
export function zoneNote(ids) {
  const { zone, mixed } = boardZone(ids);
  if (!zone) return '';
  if (mixed) return `Times in each branch's zone; the timeline in ${zone}`;
  return zone === browserZone() ? '' : `Times in ${zone}`;
}
