import axios from 'axios';

/**
 * Whether a LightOS discovery client answers on this host, as os-brick's LightOSConnector.find_dsc
 * asks it (openstack/os-brick os_brick/initiator/connectors/lightos.py: HEAD
 * http://localhost:6060/metrics, 200 = found). os-brick reports it in the connector as
 * `found_dsc` ('found' or '') next to the host NQN; LightOS' Cinder driver refuses a connector
 * without it.
 */
export async function lightosDiscoveryClientFound(): Promise<boolean> {
  try {
    const r = await axios.head('http://localhost:6060/metrics', {
      timeout: 2000,
      validateStatus: () => true,
      maxRedirects: 0,
      proxy: false,
    });
    return r.status === 200;
  } catch {
    return false;
  }
}
