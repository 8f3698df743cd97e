import type { FleetRefreshResult } from '../actions/fleet/fleet';
import type { CliRender } from './parse';

// Human output: nova-manage's two-column "Property | Value" table, rows sorted by key.

export function renderResult(result: Record<string, unknown>, render: CliRender): string {
  if (result.totals !== undefined) return renderAudit(result, render);
  if (result.counts !== undefined) return renderFleet(result as unknown as FleetRefreshResult, render);
  if (result.connector !== undefined) {
    return render.json ? JSON.stringify(result.connector, null, 2) : table(result.connector as Record<string, unknown>);
  }
  if (result.bdm === undefined && result.bdms === undefined) return renderRefresh(result, render);
  return renderShow(result, render);
}

/** refresh: what changed, then where the time went. */
function renderRefresh(result: Record<string, unknown>, render: CliRender): string {
  if (render.json) return JSON.stringify(result, null, 2);
  if (render.connectionInfoOnly) return JSON.stringify(result.connection_info, null, 2);
  const summary: Record<string, unknown> = {};
  for (const key of ['msg', 'bdm_uuid', 'instance_uuid', 'volume_id', 'host', 'old_attachment_id', 'new_attachment_id', 'rpc_version']) {
    if (result[key] !== undefined) summary[key] = result[key];
  }
  const steps = (result.steps as Array<{ step: string; ms: number }> | undefined) ?? [];
  const timings = steps.map((s) => `  ${s.step.padEnd(30)} ${String(s.ms).padStart(6)} ms`).join('\n');
  return `${table(summary)}\nsteps:\n${timings}`;
}

/** fleet refresh: its msg, then the module's own summary (the counts, one line per BDM). */
function renderFleet(result: FleetRefreshResult, render: CliRender): string {
  if (render.json) return JSON.stringify(result, null, 2);
  return [result.msg, ...result.summary].join('\n');
}

/** audit: totals per cell and per reason, then one line per stale BDM. */
function renderAudit(result: Record<string, unknown>, render: CliRender): string {
  if (render.json) return JSON.stringify(result, null, 2);
  const totals = result.totals as { scanned: number; stale: number; by_reason: Record<string, number>; cells: Array<{ name: string | null; uuid: string; scanned: number; stale: number; error?: string }> };
  const lines = [`${totals.scanned} volume BDMs scanned, ${totals.stale} stale`];
  for (const c of totals.cells) lines.push(`  cell ${c.name ?? c.uuid}: ${c.scanned} scanned, ${c.stale} stale${c.error ? `, ERROR: ${c.error}` : ''}`);
  for (const [code, n] of Object.entries(totals.by_reason)) lines.push(`  ${code}: ${n}`);
  const stale = result.stale as Array<Record<string, unknown>>;
  if (stale.length > 0) {
    const rows = stale.map((s) => [
      String(s.bdm_uuid), String(s.instance_uuid), String(s.host ?? '-'), String(s.cell), (s.reasons as string[]).join(','), s.refreshable ? 'yes' : `no: ${s.blocked_by}`,
    ]);
    const head = ['BDM', 'instance', 'host', 'cell', 'reasons', 'refreshable'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
    lines.push('', fmt(head), ...rows.map(fmt));
  }
  if (result.stale_truncated === true) lines.push(`... and ${totals.stale - stale.length} more stale BDMs not listed (stale_limit ${stale.length}${result.report_path ? `; all in ${result.report_path}` : ''})`);
  if (result.report_path) lines.push(`report: ${result.report_path}`);
  if (result.metrics_path) lines.push(`metrics: ${result.metrics_path}`);
  return lines.join('\n');
}

function renderShow(result: Record<string, unknown>, render: CliRender): string {
  const bdms = Array.isArray(result.bdms) ? (result.bdms as Array<Record<string, unknown>>) : [result.bdm as Record<string, unknown>];
  if (render.connectionInfoOnly) {
    const infos = bdms.map((b) => b.connection_info);
    if (render.json) return JSON.stringify(infos.length === 1 ? infos[0] : infos, null, 2);
    return infos.map((info) => table(isObject(info) ? info : { connection_info: info })).join('\n');
  }
  if (render.json) return JSON.stringify(Array.isArray(result.bdms) ? result.bdms : result.bdm, null, 2);
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

export function table(obj: Record<string, unknown>): string {
  const rows = Object.keys(obj)
    .sort()
    .map((k) => [k, cell(obj[k])] as const);
  const w1 = Math.max('Property'.length, ...rows.map(([k]) => k.length));
  const w2 = Math.max('Value'.length, ...rows.map(([, v]) => v.length));
  const line = `+${'-'.repeat(w1 + 2)}+${'-'.repeat(w2 + 2)}+`;
  const row = (a: string, b: string) => `| ${a.padEnd(w1)} | ${b.padEnd(w2)} |`;
  return [line, row('Property', 'Value'), line, ...rows.map(([k, v]) => row(k, v)), line].join('\n');
}
