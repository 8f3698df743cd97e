import type { Attachment } from '../../cinder/cinder-client';
import { isSecretKey, maskSecrets } from '../../output/mask-secrets';
import { connectionInfoFromAttachment, parseConnectionInfo, type ConnectionInfo } from './connection-info';

// Why a BDM's connection_info is stale, as stable reason codes with a one-line detail.
// DB-only rules need nothing but the BDM row; the Cinder rules need the attachment.

export type StaleCode =
  | 'legacy_attachment'
  | 'connection_info_missing'
  | 'attachment_missing'
  | 'attachment_not_attached'
  | 'attachment_host_mismatch'
  | 'connection_info_differs'
  | 'expectation_mismatch';

export interface StaleReason {
  code: StaleCode;
  detail: string;
}

/**
 * Keys Cinder or Nova put into connection_info.data by themselves, with why. They say nothing
 * about where the volume is, so comparing Nova's copy with Cinder's view ignores them: a Cinder
 * upgrade that starts adding one must not mark the whole fleet stale. Keys Cinder has always
 * added from the volume's settings (access_mode, encrypted, qos_specs, discard, cacheable,
 * block sizes) are compared: a change there is a real change.
 */
export const SELF_ADDED_DATA_KEYS: ReadonlyMap<string, string> = new Map([
  [
    'enforce_multipath',
    "Cinder 2025.1 (Epoxy) copies the connector's enforce_multipath into every new attachment's connection_info, false when absent " +
      '(openstack/cinder commit 0c3c7b7bb, cinder/volume/manager.py _connection_create); BDMs attached before the upgrade lack it',
  ],
  [
    'device_path',
    "Nova's libvirt volume drivers record the local device os-brick connected (nova/virt/libvirt/volume/iscsi.py, fibrechannel.py, " +
      'nvme.py, scaleio.py, ...); Cinder never has it',
  ],
  [
    'multipath_id',
    'Nova records it for multipath devices and carries it across refreshes (nova/virt/libvirt/volume/fibrechannel.py, ' +
      'nova/virt/block_device.py _preserve_multipath_id); Cinder never has it',
  ],
]);

export interface BdmFacts {
  attachment_id: string | null;
  connection_info: string | null;
}

/** Rules that need only the BDM row (what the fleet audit runs by default). */
export function dbStaleReasons(
  bdm: BdmFacts,
  expect: Record<string, unknown> | undefined,
  /** The parsed connection_info, when the caller already has it (the audit's hot path). */
  info: ConnectionInfo | null = parseConnectionInfo(bdm.connection_info),
): StaleReason[] {
  const reasons: StaleReason[] = [];
  if (bdm.attachment_id === null) {
    reasons.push({
      code: 'legacy_attachment',
      detail: 'no attachment_id: a legacy cinder v2 attachment (a refresh migrates it to a v3 attachment)',
    });
  }
  if (!info || Object.keys(info).length === 0 || !info.driver_volume_type) {
    const what = bdm.connection_info === null || bdm.connection_info === '' ? 'NULL' : info ? 'empty' : 'not valid JSON';
    reasons.push({ code: 'connection_info_missing', detail: `connection_info is ${what}` });
  } else if (expect) {
    const mismatch = expectationMismatch(info, expect);
    if (mismatch) reasons.push({ code: 'expectation_mismatch', detail: mismatch });
  }
  return reasons;
}

/** Rules that compare with Cinder: the attachment exists, is attached, on the right host, and holds what Nova stores. */
export function cinderStaleReasons(
  bdm: BdmFacts & { volume_id: string; instance_uuid: string },
  attachment: Attachment | null,
  attachedHost: string | null | undefined,
  instanceHost: string | null,
): StaleReason[] {
  if (bdm.attachment_id === null) return [];
  if (!attachment) return [{ code: 'attachment_missing', detail: `Cinder has no attachment ${bdm.attachment_id}` }];
  if (attachment.volume_id !== bdm.volume_id || (attachment.instance !== null && attachment.instance !== bdm.instance_uuid)) {
    return [
      {
        code: 'attachment_missing',
        detail: `attachment ${attachment.id} belongs to volume ${attachment.volume_id} / instance ${attachment.instance}, not this BDM`,
      },
    ];
  }
  const reasons: StaleReason[] = [];
  if (attachment.status !== 'attached') {
    reasons.push({ code: 'attachment_not_attached', detail: `Cinder's attachment ${attachment.id} is ${attachment.status}, not attached` });
  }
  if (attachedHost && instanceHost && attachedHost !== instanceHost) {
    reasons.push({
      code: 'attachment_host_mismatch',
      detail: `Cinder recorded host ${attachedHost} for the attachment, but the instance is on ${instanceHost}`,
    });
  }
  const stored = parseConnectionInfo(bdm.connection_info);
  if (stored && attachment.connection_info && Object.keys(attachment.connection_info).length > 0) {
    const rebuilt = connectionInfoFromAttachment(attachment, bdm.volume_id, stored);
    const diff = firstDifference(comparable(stored), comparable(rebuilt));
    if (diff)
      reasons.push({ code: 'connection_info_differs', detail: `Nova's connection_info differs from Cinder's attachment at ${diff}` });
  }
  return reasons;
}

/** driver_volume_type + data, without the keys Cinder or Nova add by themselves. */
export function comparable(info: ConnectionInfo): Record<string, unknown> {
  const data = { ...(info.data ?? {}) };
  for (const k of SELF_ADDED_DATA_KEYS.keys()) delete data[k];
  return { driver_volume_type: info.driver_volume_type, data };
}

function firstDifference(a: unknown, b: unknown, path = ''): string | undefined {
  if (a === b) return undefined;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of [...keys].sort()) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    return undefined;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? undefined : path || '(root)';
}

/**
 * Does the stored connection_info match the operator's partial expectation? Lists are sets
 * (order carries no meaning); Ceph monitors are compared as host:port pairs. Numbers and their
 * string forms are equal (ports are strings in rbd data). Returns the first mismatch, in words.
 */
export function expectationMismatch(stored: unknown, expect: unknown, path = ''): string | undefined {
  const where = path || 'connection_info';
  const lastKey = path.slice(path.lastIndexOf('.') + 1);
  if (lastKey && isSecretKeyCached(lastKey)) {
    // Never echo a keyring or password, stored or expected.
    return canonical(stored) === canonical(expect) ? undefined : `${where} differs from the expected value (secret, not shown)`;
  }
  if (expect !== null && typeof expect === 'object' && !Array.isArray(expect)) {
    if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return `${where} is not an object`;
    const e = expect as Record<string, unknown>;
    const s = stored as Record<string, unknown>;
    if (Array.isArray(e.hosts) && Array.isArray(e.ports)) {
      const want = expectedPairs(e.hosts, e.ports);
      const have = Array.isArray(s.hosts) && Array.isArray(s.ports) ? pairs(s.hosts, s.ports) : [];
      if (!sameStrings(want, have)) {
        return `${path ? `${path}.` : ''}hosts/ports are ${clip(have.join(', ')) || 'unset'}, expected ${clip(want.join(', '))}`;
      }
    }
    for (const k of Object.keys(e)) {
      if ((k === 'hosts' || k === 'ports') && Array.isArray(e.hosts) && Array.isArray(e.ports)) continue;
      const d = expectationMismatch(s[k], e[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    return undefined;
  }
  if (Array.isArray(expect)) {
    const want = expect.map(canonical).sort();
    const have = Array.isArray(stored) ? stored.map(canonical).sort() : null;
    return have && JSON.stringify(want) === JSON.stringify(have) ? undefined : `${where} is ${echo(stored)}, expected ${echo(expect)}`;
  }
  return canonical(stored) === canonical(expect) ? undefined : `${where} is ${echo(stored)}, expected ${echo(expect)}`;
}

/** A value in a detail line: masked (a stored subtree may hold a keyring) and kept short. */
function echo(value: unknown): string {
  return clip(JSON.stringify(maskSecrets(value)) ?? 'unset');
}

function clip(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}... (${text.length} characters)` : text;
}

// The audit runs these for every BDM of the fleet (a million at a time): no JSON, no regex twice.

function sameStrings(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const secretKeyCache = new Map<string, boolean>();

function isSecretKeyCached(key: string): boolean {
  let secret = secretKeyCache.get(key);
  if (secret === undefined) {
    secret = isSecretKey(key);
    if (secretKeyCache.size < 1000) secretKeyCache.set(key, secret);
  }
  return secret;
}

function canonical(v: unknown): string {
  return typeof v === 'number' || typeof v === 'string' ? String(v) : JSON.stringify(v);
}

function pairs(hosts: unknown[], ports: unknown[]): string[] {
  return hosts.map((h, i) => `${String(h)}:${String(ports[i] ?? '')}`).sort();
}

/** The expected pairs are the same for every BDM of an audit: sort them once per expectation. */
const expectedPairsCache = new WeakMap<unknown[], string[]>();

function expectedPairs(hosts: unknown[], ports: unknown[]): string[] {
  let cached = expectedPairsCache.get(hosts);
  if (!cached) {
    cached = pairs(hosts, ports);
    expectedPairsCache.set(hosts, cached);
  }
  return cached;
}

/** What the connection_info would be with the expectation applied (for a check-mode diff). */
export function applyExpectation(stored: unknown, expect: unknown): unknown {
  if (expect === null || typeof expect !== 'object' || Array.isArray(expect)) return expect;
  const base = stored && typeof stored === 'object' && !Array.isArray(stored) ? { ...(stored as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(expect)) base[k] = applyExpectation(base[k], v);
  return base;
}

/**
 * What a refresh would store (check mode's diff): Cinder's view of the attachment when it
 * differs from the BDM's copy, else the BDM's with the expectation applied.
 */
export function predictedConnectionInfo(
  stored: ConnectionInfo | null,
  volumeId: string,
  judged: { reasons: readonly StaleReason[]; cinderView: Attachment | null },
  expect: Record<string, unknown> | undefined,
): unknown {
  if (judged.cinderView && judged.reasons.some((r) => r.code === 'connection_info_differs')) {
    return connectionInfoFromAttachment(judged.cinderView, volumeId, stored);
  }
  return expect ? applyExpectation(stored, expect) : stored;
}

/** Refreshed, yet expect is still not met (`mismatch`: expectationMismatch's words): Cinder hands out the old values. */
export function stillMismatchedMessage(mismatch: string): string {
  const likely = "most likely cinder-volume's own configuration was not updated";
  return `Cinder still hands out connection_info that does not match expect (${mismatch}); ${likely}`;
}
