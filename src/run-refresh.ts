import type { AnsibleFlags } from './args/validate';
import type { ModuleArgs } from './args/schema';
import { refreshBdm } from './actions/refresh';
import { CinderClient, CinderSession } from './cinder/cinder-client';
import { OpenStackHttp } from './cinder/http';
import { cinderSecrets, cinderSettings } from './cinder/cinder-settings';
import { loadConnector } from './args/connector-file';
import { urlPasswords } from './config/connections';
import { localHost, type NovaConf } from './config/nova-conf';
import { rabbitSettings } from './rpc/rabbit-settings';
import { BadInput } from './errors';
import type { Cell, NovaTopology } from './nova-db/cells';
import { OsloRpcClient } from './rpc/oslo-rpc-client';
import type { TextScrubber } from './output/scrub-text';

// Wires refresh to the real outside systems from nova.conf and the arguments. Loaded only for
// refresh, so `show` never pays for the RabbitMQ and HTTP stacks.

export async function runRefresh(
  args: ModuleArgs,
  conf: NovaConf,
  ansible: AnsibleFlags,
  topology: NovaTopology,
  scrubber: TextScrubber,
): Promise<Record<string, unknown> & { changed: boolean }> {
  const connector = loadConnector(args.connector as Record<string, unknown> | undefined, args.connector_path);
  const { cinder, http } = cinderSettings(conf, args.cinder_auth ?? {});
  for (const s of cinderSecrets(cinder)) scrubber.add(s);
  const session = new CinderSession(new OpenStackHttp(http), cinder);
  const rpcClients = new Map<string, Promise<OsloRpcClient>>();
  const rpcFor = (cell: Cell): Promise<OsloRpcClient> => {
    let client = rpcClients.get(cell.uuid);
    if (!client) {
      const url = cell.transportUrl ?? '';
      if (url === '' || url.startsWith('none')) throw new BadInput(`cell ${cell.name ?? cell.uuid} has no message queue (transport_url ${url || 'unset'})`);
      for (const p of urlPasswords(url)) scrubber.add(p);
      client = OsloRpcClient.connect(rabbitSettings(conf, url, `transport_url of cell ${cell.name ?? cell.uuid}`), args.connect_timeout * 1000);
      rpcClients.set(cell.uuid, client);
    }
    return client;
  };
  const rpcTimeout = args.rpc_timeout ?? Number(conf.get('DEFAULT', 'rpc_response_timeout') ?? 60);
  try {
    return (await refreshBdm(
      { topology, cinderFor: (requestId) => new CinderClient(session, requestId), rpcFor },
      args.bdm_uuid !== undefined ? { bdmUuid: args.bdm_uuid.toLowerCase() } : { instanceUuid: args.instance_uuid!.toLowerCase(), volumeId: args.volume_id!.toLowerCase() },
      {
        connector,
        requireLibvirt: args.require_libvirt,
        rpcTimeoutSeconds: rpcTimeout,
        serviceDownTimeSeconds: Number(conf.get('DEFAULT', 'service_down_time') ?? 60),
        upgradeLevel: conf.get('upgrade_levels', 'compute'),
        localHost: localHost(conf),
        revealSecrets: args.reveal_secrets,
        checkMode: ansible.checkMode,
        diff: ansible.diff,
        force: args.force,
        expect: args.expect as Record<string, unknown> | undefined,
      },
    )) as Record<string, unknown> & { changed: boolean };
  } finally {
    await Promise.all([...rpcClients.values()].map((p) => p.then((c) => c.close()).catch(() => undefined)));
  }
}
