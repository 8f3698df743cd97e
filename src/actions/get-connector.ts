import { hostConnector, wantsMultipath, type HostConnector, type HostProbes } from '../config/host-connector';
import type { NovaConf } from '../config/nova-conf';
import { PreconditionFailed } from '../errors';

export type GetConnectorResult = { changed: false; connector: HostConnector };

/**
 * What this compute host's libvirt driver would hand Cinder, as `nova-manage volume_attachment
 * get_connector` prints it. Read-only. Like os-brick with enforce_multipath, asking for
 * multipath without multipathd running is an error, not a silent downgrade.
 */
export async function getConnector(
  conf: NovaConf,
  root: string,
  probe: { lightosDiscoveryClient: () => Promise<boolean> },
): Promise<GetConnectorResult> {
  const probes: HostProbes = { lightosDiscoveryClient: await probe.lightosDiscoveryClient() };
  const connector = hostConnector(conf, root, probes);
  if (wantsMultipath(conf) && connector.multipath !== true) {
    throw new PreconditionFailed('[libvirt] volume_use_multipath is true but multipathd is not running on this host');
  }
  return { changed: false, connector };
}
