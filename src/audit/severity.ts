import type { Severity } from '../types';

const RANK: Record<Severity, number> = { normal: 0, warning: 1, critical: 2 };

/** IBM's status rules: these statuses make an event at least critical, or at least warning. */
const CRITICAL_STATUSES = new Set([401, 403, 503, 507]);
const WARNING_STATUSES = new Set([400, 409, 424, 500, 502, 504, 505]);

/**
 * Severity is decided by the action first (from the catalog), then the status may raise it. A status never
 * lowers it: a failed secret deletion is still a critical event for an auditor.
 */
export function severityFor(actionSeverity: Severity, status: number | undefined): Severity {
  let byStatus: Severity = 'normal';
  if (status !== undefined) {
    if (CRITICAL_STATUSES.has(status)) byStatus = 'critical';
    else if (WARNING_STATUSES.has(status)) byStatus = 'warning';
  }
  return RANK[byStatus] > RANK[actionSeverity] ? byStatus : actionSeverity;
}
