/**
 * Activity Tracker's time format: UTC, exactly `YYYY-MM-DDTHH:mm:ss.SS+0000` (two fraction digits).
 * `Date.toISOString()` gives three digits and `Z`.
 */
export function formatEventTime(epochMs: number): string {
  // Many events share a 10 ms tick: format each tick once.
  const tick = Math.floor(epochMs / 10);
  if (tick !== lastTick) {
    lastTick = tick;
    lastText = `${new Date(epochMs).toISOString().slice(0, 22)}+0000`;
  }
  return lastText;
}

let lastTick = Number.NaN;
let lastText = '';

export const EVENT_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{2}\+0000$/;
