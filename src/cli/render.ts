import type { CliRender } from './parse';

// Human output: nova-manage's two-column "Property | Value" table, rows sorted by key.

export function renderResult(result: Record<string, unknown>, render: CliRender): string {
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
