/**
 * Activity Tracker's time format: UTC, exactly `YYYY-MM-DDTHH:mm:ss.SS+0000` (two fraction digits).
 * `Date.toISOString()` gives three digits and `Z`.
 */
export function formatEventTime(epochMs: number): string {
  const iso = new Date(epochMs).toISOString();
  return `${iso.slice(0, 22)}+0000`;
}

export const EVENT_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{2}\+0000$/;
