/**
 * Behaviour control: what the ingest APIs of a region do with the next requests. A region's own behaviour wins
 * over the `'*'` one; a behaviour with `times` is removed after that many requests.
 */
import type { Behaviour, Region } from './types';

interface Entry {
  behaviour: Behaviour;
  remaining: number | undefined;
}

const ALL = '*';
const OK: Behaviour = { mode: 'ok' };

function timesOf(b: Behaviour): number | undefined {
  return 'times' in b ? b.times : undefined;
}

function validate(b: Behaviour): void {
  const times = timesOf(b);
  if (times !== undefined && !(Number.isInteger(times) && times >= 1)) {
    throw new RangeError(`behaviour times must be a positive integer (got ${String(times)})`);
  }
  if (b.mode === 'partial' && !(Number.isInteger(b.rejectEvery) && b.rejectEvery >= 1)) {
    throw new RangeError(`partial rejectEvery must be a positive integer (got ${String(b.rejectEvery)})`);
  }
  if (b.mode === 'throttle' && !(Number.isFinite(b.retryAfterSeconds) && b.retryAfterSeconds >= 0)) {
    throw new RangeError(`throttle retryAfterSeconds must be a non-negative number (got ${String(b.retryAfterSeconds)})`);
  }
}

export class BehaviourTable {
  private readonly entries = new Map<string, Entry>();

  set(region: Region | '*', b: Behaviour): void {
    validate(b);
    if (region === ALL) this.entries.clear();
    this.entries.set(region, { behaviour: b, remaining: timesOf(b) });
  }

  clear(): void {
    this.entries.clear();
  }

  /** True when every connection must be dropped (`'*'` is down). */
  get allDown(): boolean {
    return this.entries.get(ALL)?.behaviour.mode === 'down';
  }

  /** The behaviour for one request to a region's ingest API; counts the request against `times`. */
  take(region: Region): Behaviour {
    const key = this.entries.has(region) ? region : ALL;
    const entry = this.entries.get(key);
    if (!entry) return OK;
    if (entry.remaining !== undefined) {
      entry.remaining -= 1;
      if (entry.remaining <= 0) this.entries.delete(key);
    }
    return entry.behaviour;
  }
}
