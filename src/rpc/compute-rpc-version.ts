import { BadInput } from '../errors';

// How nova 26 picks the version of remove_volume_connection (nova-objects.md §5): "6.0" when
// the compute RPC cap is 6.x, "5.0" when it is 5.x. The cap comes from [upgrade_levels]
// compute: unset = no cap; a release alias or a version; "auto" = from the minimum
// nova-compute service version across all cells.

const ALIASES: Record<string, string> = {
  icehouse: '3.23', juno: '3.35', kilo: '4.0', liberty: '4.5', mitaka: '4.11', newton: '4.13', ocata: '4.13',
  pike: '4.17', queens: '5.0', rocky: '5.0', stein: '5.1', train: '5.3', ussuri: '5.11', victoria: '5.12',
  wallaby: '6.0', xena: '6.0', yoga: '6.0', zed: '6.1',
};

/** services.version -> compute RPC cap (SERVICE_VERSION_HISTORY of nova 26.2.2, up to 64). */
const SERVICE_VERSION_CAP: string[] = [
  '4.0', '4.4', '4.5', '4.6', '4.6', '4.7', '4.8', '4.9', '4.10', '4.11', '4.11', '4.12', '4.12', '4.13', '4.13', '4.13', '4.13', '4.13',
  '4.14', '4.15', '4.16', '4.17', '4.17', '4.18', '4.18', '4.18', '4.19', '4.20', '4.21', '4.22', '5.0', '5.0', '5.0', '5.0', '5.0', '5.0',
  '5.0', '5.1', '5.1', '5.2', '5.3', '5.4', '5.5', '5.6', '5.7', '5.8', '5.9', '5.10', '5.10', '5.10', '5.11', '5.11', '5.11', '5.12', '5.13',
  '5.13', '6.0', '6.0', '6.0', '6.0', '6.0', '6.0', '6.0', '6.0', '6.1',
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
      `the oldest nova-compute reports service version ${minimum}, newer than this tool knows (${NEWEST_KNOWN_SERVICE_VERSION}, Nova 26); pin [upgrade_levels] compute`,
    );
  }
  return cap;
}

/** The version nova 26 sends remove_volume_connection with under this cap. */
export function removeVolumeConnectionVersion(cap: string | null): string {
  if (cap === null) return '6.0';
  const major = Number(cap.split('.')[0]);
  if (major === 6) return '6.0';
  if (major === 5) return '5.0';
  throw new BadInput(`the compute RPC version cap ${cap} is older than 5.0: remove_volume_connection cannot be sent`);
}
