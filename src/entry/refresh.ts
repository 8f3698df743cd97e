import type { AnsibleFlags } from '../args/validate';
import type { ModuleArgs } from '../args/schema';
import { refreshBdm } from '../actions/refresh/refresh';
import type { SingleRefreshResult } from '../actions/refresh/result';
import type { FleetProgress, FleetRefreshResult } from '../actions/fleet/fleet';
import { connectorLookup } from '../actions/fleet/connectors';
import { CinderClient, CinderSession } from '../cinder/cinder-client';
import { OpenStackHttp } from '../cinder/http';
import { cinderSecrets, cinderSettings } from '../cinder/cinder-settings';
import { loadConnector } from '../args/connector-file';
import { urlPasswords } from '../config/connections';
import { localHost, type NovaConf } from '../config/nova-conf';
import { rabbitSettings } from '../rpc/rabbit-settings';
import { BadInput } from '../errors';
import type { Cell, NovaTopology } from '../nova-db/cells';
import { OsloRpcClient } from '../rpc/oslo-rpc-client';
import type { TextScrubber } from '../output/scrub-text';
import type { Selection } from '../selection';

// Wires refresh to the real outside systems from nova.conf and the arguments. Loaded only for
// refresh, so `show` never pays for the RabbitMQ and HTTP stacks.

// The selection's kind says which result comes back.
export async function runRefresh(
  args: ModuleArgs,
  selection: Extract<Selection, { kind: 'fleet' }>,
  ...rest: [conf: NovaConf, ansible: AnsibleFlags, topology: NovaTopology, scrubber: TextScrubber]
): Promise<FleetRefreshResult>;
export async function runRefresh(
  args: ModuleArgs,
  selection: Extract<Selection, { kind: 'bdm' }>,
  ...rest: [conf: NovaConf, ansible: AnsibleFlags, topology: NovaTopology, scrubber: TextScrubber]
): Promise<SingleRefreshResult>;
export async function runRefresh(
  args: ModuleArgs,
  selection: Extract<Selection, { kind: 'bdm' | 'fleet' }>,
  conf: NovaConf,
  ansible: AnsibleFlags,
  topology: NovaTopology,
  scrubber: TextScrubber,
  /** A live progress line (the CLI on a terminal). */
  onProgress?: (p: FleetProgress) => void,
): Promise<SingleRefreshResult | FleetRefreshResult> {
  const fleet = selection.kind === 'fleet';
  // The single form needs its one connector up front (nova-manage's exit codes 2 and 3).
  const connector = fleet || (args.connector === undefined && args.connector_path === undefined)
    ? undefined
    : loadConnector(args.connector as Record<string, unknown> | undefined, args.connector_path);
  const connectorFor = connectorLookup({
    connectors: args.connectors as Record<string, Record<string, unknown> | string> | undefined,
    connectorDir: args.connector_dir,
    ...(connector ? { connector } : { connector: args.connector as Record<string, unknown> | undefined, connectorPath: args.connector_path }),
  });
  const { cinder, http } = cinderSettings(conf, args.cinder_auth ?? {});
  for (const s of cinderSecrets(cinder)) scrubber.add(s);
  const session = new CinderSession(new OpenStackHttp(http), cinder);
  // A refresh (not its check mode) deletes with the service token: validate it while other steps run.
  session.prewarmServiceToken = !ansible.checkMode;
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
  const settings = {
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
    refuseLocked: args.refuse_locked,
    runningInstances: args.running_instances,
  };
  const cinderFor = (requestId: string) => new CinderClient(session, requestId);
  try {
    if (selection.kind === 'fleet') {
      const { refreshFleet } = await import('../actions/fleet/fleet');
      // A live progress line on a terminal (the CLI); Ansible's stderr is never one.
      const progress = onProgress ?? (process.stderr.isTTY === true ? writeProgress : undefined);
      const result = await refreshFleet(
        { topology, cinderFor, rpcFor, connectorFor },
        selection.filters,
        {
          ...settings,
          maxParallel: args.max_parallel,
          perHostParallel: args.per_host_parallel,
          maxFailures: args.max_failures,
          reportPath: args.report_path,
          onProgress: progress,
        },
      );
      // Failure messages come from errors of the outside systems: scrubbed like msg.
      for (const f of result.failures) f.msg = scrubber.scrub(f.msg);
      result.summary = result.summary.map((line) => scrubber.scrub(line));
      return result;
    }
    return await refreshBdm(
      { topology, cinderFor, rpcFor },
      selection.bdm,
      { ...settings, connector: connector ?? connectorFor },
    );
  } finally {
    await Promise.all([...rpcClients.values()].map((p) => p.then((c) => c.close()).catch(() => undefined)));
  }
}

function writeProgress(p: FleetProgress): void {
  const line = `${p.instancesDone}/${p.instances} instances: ${p.refreshed} refreshed, ${p.skipped} skipped, ${p.failed} failed`;
  process.stderr.write(`\r${line}${p.instancesDone === p.instances ? '\n' : ''}`);
}
