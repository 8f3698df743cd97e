import { BadInput } from '../errors';

// How nova picks the version of remove_volume_connection (openstack/nova nova/compute/rpcapi.py
// ComputeAPI.remove_volume_connection): "6.3" with delete_attachment=True when the compute RPC
// cap allows 6.3 (Caracal and later, commit dc6dac360c), else "6.0" for a 6.x cap and "5.0"
// for 5.x, as nova 26 does. The cap comes from [upgrade_levels] compute: a release alias or a
// version; "auto" = from the minimum nova-compute service version across all cells. Unset is
// nova 26's "no cap" (6.0): the tool cannot tell which release the computes run, and 6.0 is what
// every compute since Wallaby accepts; pin or use auto to let newer computes delete the old
// attachment themselves.

const ALIASES: Record<string, string> = {
  icehouse: '3.23',
  juno: '3.35',
  kilo: '4.0',
  liberty: '4.5',
  mitaka: '4.11',
  newton: '4.13',
  ocata: '4.13',
  pike: '4.17',
  queens: '5.0',
  rocky: '5.0',
  stein: '5.1',
  train: '5.3',
  ussuri: '5.11',
  victoria: '5.12',
  wallaby: '6.0',
  xena: '6.0',
  yoga: '6.0',
  zed: '6.1',
  antelope: '6.2',
  bobcat: '6.2',
  caracal: '6.3',
  dalmatian: '6.3',
  epoxy: '6.4',
  flamingo: '6.4',
  gazpacho: '6.5',
};

/** services.version -> compute RPC cap (SERVICE_VERSION_HISTORY, openstack/nova nova/objects/service.py, up to 73). */
const SERVICE_VERSION_CAP: string[] = [
  '4.0',
  '4.4',
  '4.5',
  '4.6',
  '4.6',
  '4.7',
  '4.8',
  '4.9',
  '4.10',
  '4.11',
  '4.11',
  '4.12',
  '4.12',
  '4.13',
  '4.13',
  '4.13',
  '4.13',
  '4.13',
  '4.14',
  '4.15',
  '4.16',
  '4.17',
  '4.17',
  '4.18',
  '4.18',
  '4.18',
  '4.19',
  '4.20',
  '4.21',
  '4.22',
  '5.0',
  '5.0',
  '5.0',
  '5.0',
  '5.0',
  '5.0',
  '5.0',
  '5.1',
  '5.1',
  '5.2',
  '5.3',
  '5.4',
  '5.5',
  '5.6',
  '5.7',
  '5.8',
  '5.9',
  '5.10',
  '5.10',
  '5.10',
  '5.11',
  '5.11',
  '5.11',
  '5.12',
  '5.13',
  '5.13',
  '6.0',
  '6.0',
  '6.0',
  '6.0',
  '6.0',
  '6.0',
  '6.0',
  '6.0',
  '6.1',
  '6.1',
  '6.2',
  '6.3',
  '6.4',
  '6.4',
  '6.4',
  '6.5',
  '6.5',
  '6.5',
];

export const NEWEST_KNOWN_SERVICE_VERSION = SERVICE_VERSION_CAP.length - 1;

/** The cap for a pin from [upgrade_levels] compute (not "auto"); null = no cap. */
export function capFromPin(pin: string | undefined): string | null {
  if (pin === undefined || pin === '') return null;
  const v = ALIASES[pin.toLowerCase()] ?? pin;
  if (!/^\d+\.\d+$/.test(v)) throw new BadInput(`[upgrade_levels] compute = ${pin} is neither a release name nor a version`);
  return v;
}

/** The cap for "auto": from the minimum live nova-compute service version (0 = no computes). */
export function capFromMinimumServiceVersion(minimum: number): string {
  if (minimum <= 0) return '6.1';
  const cap = SERVICE_VERSION_CAP[minimum];
  if (cap === undefined) {
    throw new BadInput(
      `the oldest nova-compute reports service version ${minimum}, newer than this tool knows (${NEWEST_KNOWN_SERVICE_VERSION}); pin [upgrade_levels] compute`,
    );
  }
  return cap;
}

/** The version remove_volume_connection is sent with under this cap. */
export function removeVolumeConnectionVersion(cap: string | null): string {
  if (cap === null) return '6.0';
  if (canSend(cap, '6.3')) return '6.3';
  const [major] = cap.split('.').map(Number) as [number, number];
  if (major === 6) return '6.0';
  if (major === 5) return '5.0';
  if (major > 6)
    throw new BadInput(
      `the compute RPC version cap ${cap} is newer than this tool knows (6.x): pin [upgrade_levels] compute to a 6.x version`,
    );
  throw new BadInput(`the compute RPC version cap ${cap} is older than 5.0: remove_volume_connection cannot be sent`);
}

/** From 6.3 nova's rpcapi sends remove_volume_connection's delete_attachment argument (dc6dac360c). */
export function takesDeleteAttachment(version: string): boolean {
  return version === '6.3';
}

/** nova's two compute RPC topics (nova/compute/rpcapi.py RPC_TOPIC, RPC_TOPIC_ALT). */
export type ComputeTopic = 'compute' | 'compute-alt';

/**
 * The topic remove_volume_connection goes to under this cap, as nova master's
 * ComputeAPI.prepare_for_alt_rpcserver picks it (commit d5ffb58a8d, RPC 6.5): `compute-alt`
 * when the client can send 6.5, else `compute`. A 6.5 compute (service version 71 on) runs a
 * second RPC server on `compute-alt`, which it keeps during a graceful shutdown after it has
 * stopped the `compute` one. No cap: `compute`, which every compute serves unless it is
 * shutting down (see above for why no cap means 6.0 here).
 */
export function computeTopic(cap: string | null): ComputeTopic {
  return cap !== null && canSend(cap, '6.5') ? 'compute-alt' : 'compute';
}

/** oslo.messaging's can_send_version: same major, minor not above the cap's. */
function canSend(cap: string, version: string): boolean {
  const [capMajor, capMinor] = cap.split('.').map(Number) as [number, number];
  const [major, minor] = version.split('.').map(Number) as [number, number];
  return capMajor === major && capMinor >= minor;
}
