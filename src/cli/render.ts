import type { AuditResult } from '../actions/audit/audit';
import type { FleetRefreshResult } from '../actions/fleet/result';
import type { SingleRefreshResult } from '../actions/refresh/result';
import type { ShowResult } from '../actions/show';
import type { FailureResult, Outcome } from '../entry/result';
import type { CliRender } from './parse';
import { cellLabel } from '../cell-label';

// Human output: nova-manage's two-column "Property | Value" table, rows sorted by key.

export function renderResult(outcome: Outcome, render: CliRender): string {
  switch (outcome.kind) {
    case 'audit':
      return renderAudit(outcome.result, render);
    case 'fleet_refresh':
      return renderFleet(outcome.result, render);
    case 'get_connector':
      return render.json ? JSON.stringify(outcome.result.connector, null, 2) : table(outcome.result.connector);
    case 'show':
      return renderShow(outcome.result, render);
    case 'refresh':
    case 'failure':
      return renderRefresh(outcome.result, render);
  }
}

/** The fields of a refresh's table, in no particular order (the table sorts them). */
const REFRESH_SUMMARY = ['msg', 'bdm_uuid', 'instance_uuid', 'volume_id', 'host', 'old_attachment_id', 'new_attachment_id', 'rpc_version'];

/** refresh: what changed, then where the time went. */
function renderRefresh(result: SingleRefreshResult | FailureResult, render: CliRender): string {
  if (render.json) return JSON.stringify(result, null, 2);
  if (render.connectionInfoOnly) return JSON.stringify('connection_info' in result ? result.connection_info : undefined, null, 2);
  const summary = Object.fromEntries(Object.entries(result).filter(([key, value]) => REFRESH_SUMMARY.includes(key) && value !== undefined));
  const timings = (result.steps ?? []).map((s) => `  ${s.step.padEnd(30)} ${String(s.ms).padStart(6)} ms`).join('\n');
  return `${table(summary)}\nsteps:\n${timings}`;
}

/** fleet refresh: its msg, then the module's own summary (the counts, one line per BDM). */
function renderFleet(result: FleetRefreshResult, render: CliRender): string {
  if (render.json) return JSON.stringify(result, null, 2);
  return [result.msg, ...result.summary].join('\n');
}

/** audit: totals per cell and per reason, then one line per stale BDM. */
function renderAudit(result: AuditResult, render: CliRender): string {
  if (render.json) return JSON.stringify(result, null, 2);
  const { totals, stale } = result;
  const lines = [`${totals.scanned} volume BDMs scanned, ${totals.stale} stale`];
  for (const c of totals.cells)
    lines.push(`  cell ${cellLabel(c)}: ${c.scanned} scanned, ${c.stale} stale${c.error ? `, ERROR: ${c.error}` : ''}`);
  for (const [code, n] of Object.entries(totals.by_reason)) lines.push(`  ${code}: ${n}`);
  if (stale.length > 0) {
    const rows = stale.map((s) => [
      String(s.bdm_uuid),
      String(s.instance_uuid),
      String(s.host ?? '-'),
      String(s.cell),
      s.reasons.join(','),
      s.refreshable ? 'yes' : `no: ${s.blocked_by}`,
    ]);
    const head = ['BDM', 'instance', 'host', 'cell', 'reasons', 'refreshable'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) =>
      r
        .map((v, i) => v.padEnd(widths[i]!))
        .join('  ')
        .trimEnd();
    lines.push('', fmt(head), ...rows.map(fmt));
  }
  if (result.stale_truncated) {
    const where = result.report_path ? `; all in ${result.report_path}` : '';
    lines.push(`... and ${totals.stale - stale.length} more stale BDMs not listed (stale_limit ${stale.length}${where})`);
  }
  if (result.report_path) lines.push(`report: ${result.report_path}`);
  if (result.metrics_path) lines.push(`metrics: ${result.metrics_path}`);
  return lines.join('\n');
}

function renderShow(result: ShowResult, render: CliRender): string {
  const bdms = result.bdms ?? (result.bdm ? [result.bdm] : []);
  if (render.connectionInfoOnly) {
    const infos = bdms.map((b) => b.connection_info);
    if (render.json) return JSON.stringify(infos.length === 1 ? infos[0] : infos, null, 2);
    return infos.map((info) => table(isObject(info) ? info : { connection_info: info })).join('\n');
  }
  if (render.json) return JSON.stringify(result.bdms ?? result.bdm, null, 2);
  return bdms.map((b) => table(b)).join('\n');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function table(obj: object): string {
  const rows = Object.entries(obj)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => [k, cell(v)] as const);
  const w1 = Math.max('Property'.length, ...rows.map(([k]) => k.length));
  const w2 = Math.max('Value'.length, ...rows.map(([, v]) => v.length));
  const line = `+${'-'.repeat(w1 + 2)}+${'-'.repeat(w2 + 2)}+`;
  const row = (a: string, b: string) => `| ${a.padEnd(w1)} | ${b.padEnd(w2)} |`;
  return [line, row('Property', 'Value'), line, ...rows.map(([k, v]) => row(k, v)), line].join('\n');
}
