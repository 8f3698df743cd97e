import type { Attachment } from '../../cinder/cinder-client';

// connection_info as Nova builds it from a Cinder attachment (nova/volume/cinder.py
// _translate_attachment_ref + nova-manage's serial), keeping what Nova's own refresh keeps
// and nova-manage forgets: the multiattach flag and data.multipath_id of the old value.

export type ConnectionInfo = Record<string, unknown> & { driver_volume_type?: unknown; data?: Record<string, unknown> };

export function connectionInfoFromAttachment(attachment: Attachment, volumeId: string, previous: ConnectionInfo | null): ConnectionInfo {
  const { id: _id, attach_mode: _mode, connection_info: raw, ...rest } = attachment;
  void _id;
  void _mode;
  if (!raw || Object.keys(raw).length === 0) return {};
  const data: Record<string, unknown> = { ...raw };
  delete data.attachment_id;
  const driverVolumeType = data.driver_volume_type ?? null;
  delete data.driver_volume_type;
  const info: ConnectionInfo = {
    driver_volume_type: driverVolumeType,
    data,
    status: rest.status ?? null,
    instance: rest.instance ?? null,
    attached_at: rest.attached_at ?? null,
    detached_at: rest.detached_at ?? null,
  };
  for (const [k, v] of Object.entries(rest)) if (!(k in info)) info[k] = v;
  if (!('serial' in info)) info.serial = volumeId;
  if (previous?.multiattach === true) info.multiattach = true;
  const multipathId = previous?.data?.multipath_id;
  if (multipathId !== undefined && data.multipath_id === undefined) data.multipath_id = multipathId;
  return info;
}

/** Python's json.dumps with default separators (", ", ": ") and ensure_ascii, as nova stores it. */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string')
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : 'NaN';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  return `{${Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${pythonJsonDumps(k)}: ${pythonJsonDumps(v)}`)
    .join(', ')}}`;
}

export function parseConnectionInfo(text: string | null): ConnectionInfo | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as ConnectionInfo) : null;
  } catch {
    return null;
  }
}
