import type { AnsibleFlags } from '../args/validate';
import type { ModuleArgs } from '../args/schema';
import { refreshBdm } from '../actions/refresh/refresh';
import type { SingleRefreshResult } from '../actions/refresh/result';
import type { FleetDeps, FleetProgress } from '../actions/fleet/fleet';
import type { FleetRefreshResult } from '../actions/fleet/result';
import { connectorLookup } from './connectors';
import { CinderClient, CinderSession } from '../cinder/cinder-client';
import { OpenStackHttp } from '../cinder/http';
import { cinderSecrets, cinderSettings } from '../cinder/cinder-settings';
import { loadConnector } from '../args/connector-file';
import type { Connector } from '../connector';
import { connectorErrorLine, readConnectorAttempts } from './connector-attempts';
import { urlPasswords } from '../config/connections';
import { localHost, type NovaConf } from '../config/nova-conf';
import { rabbitSettings } from '../rpc/rabbit-settings';
import { BadInput, type NovaBdmError } from '../errors';
import type { Cell, NovaTopology } from '../nova-db/cells';
import { OsloRpcClient } from '../rpc/oslo-rpc-client';
import type { TextScrubber } from '../output/scrub-text';
import type { FleetFilters, Selection } from '../selection';
import { cellLabel } from '../cell-label';

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
  const connectors = readConnectors(args, selection.kind === 'fleet');
  const cinderFor = cinderClients(conf, args, scrubber, ansible.checkMode);
  const rpc = new CellRpcClients(conf, args.connect_timeout, scrubber);
  const settings = refreshSettings(args, conf, ansible);
  try {
    if (selection.kind === 'fleet') {
      const deps = { topology, cinderFor, rpcFor: rpc.forCell, connectorFor: connectors.connectorFor };
      return await runFleetRefresh(deps, selection.filters, args, settings, scrubber, onProgress, connectors.errors);
    }
    return await refreshBdm({ topology, cinderFor, rpcFor: rpc.forCell }, selection.bdm, {
      ...settings,
      connector: connectors.single ?? connectors.connectorFor,
    });
  } finally {
    await rpc.closeAll();
  }
}

/**
 * The connectors, read here (the actions read no file): the single form's one connector up
 * front (nova-manage's exit codes 2 and 3), and the per-host lookup of a fleet (connectors.ts).
 */
function readConnectors(
  args: ModuleArgs,
  fleet: boolean,
): { single?: Connector; connectorFor: (host: string) => Connector | NovaBdmError; errors?: Record<string, string> } {
  const single =
    fleet || (args.connector === undefined && args.connector_path === undefined)
      ? undefined
      : loadConnector(args.connector as Record<string, unknown> | undefined, args.connector_path);
  const given = args.connectors as Record<string, Record<string, unknown> | string> | undefined;
  const attempted = args.connector_attempts && readConnectorAttempts(args.connector_attempts);
  const connectorFor = connectorLookup({
    connectors: attempted ? { ...given, ...attempted.connectors } : given,
    connectorDir: args.connector_dir,
    ...(single
      ? { connector: single }
      : { connector: args.connector as Record<string, unknown> | undefined, connectorPath: args.connector_path }),
  });
  return { single, connectorFor, ...(attempted ? { errors: attempted.errors } : {}) };
}

/** Cinder clients sharing one session (one token); its secrets scrubbed from every output. */
function cinderClients(conf: NovaConf, args: ModuleArgs, scrubber: TextScrubber, checkMode: boolean): (requestId: string) => CinderClient {
  const { cinder, http } = cinderSettings(conf, args.cinder_auth ?? {});
  for (const s of cinderSecrets(cinder)) scrubber.add(s);
  const session = new CinderSession(new OpenStackHttp(http), cinder);
  // A refresh (not its check mode) deletes with the service token: validate it while other steps run.
  session.prewarmServiceToken = !checkMode;
  return (requestId: string) => new CinderClient(session, requestId);
}

/** One RabbitMQ client per cell, connected on first use; all closed at the end. */
class CellRpcClients {
  private readonly clients = new Map<string, Promise<OsloRpcClient>>();

  constructor(
    private readonly conf: NovaConf,
    private readonly connectTimeoutSeconds: number,
    private readonly scrubber: TextScrubber,
  ) {}

  readonly forCell = (cell: Cell): Promise<OsloRpcClient> => {
    let client = this.clients.get(cell.uuid);
    if (!client) {
      const url = cell.transportUrl ?? '';
      if (url === '' || url.startsWith('none')) {
        throw new BadInput(`cell ${cellLabel(cell)} has no message queue (transport_url ${url || 'unset'})`);
      }
      for (const p of urlPasswords(url)) this.scrubber.add(p);
      const settings = rabbitSettings(this.conf, url, `transport_url of cell ${cellLabel(cell)}`);
      client = OsloRpcClient.connect(settings, this.connectTimeoutSeconds * 1000);
      this.clients.set(cell.uuid, client);
    }
    return client;
  };

  async closeAll(): Promise<void> {
    await Promise.all([...this.clients.values()].map((p) => p.then((c) => c.close()).catch(() => undefined)));
  }
}

/** What a single and a fleet refresh both read: the arguments, nova.conf's defaults, Ansible's flags. */
function refreshSettings(args: ModuleArgs, conf: NovaConf, ansible: AnsibleFlags) {
  return {
    requireLibvirt: args.require_libvirt,
    rpcTimeoutSeconds: args.rpc_timeout ?? Number(conf.get('DEFAULT', 'rpc_response_timeout') ?? 60),
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
}

async function runFleetRefresh(
  deps: FleetDeps,
  filters: FleetFilters,
  args: ModuleArgs,
  settings: ReturnType<typeof refreshSettings>,
  scrubber: TextScrubber,
  onProgress: ((p: FleetProgress) => void) | undefined,
  /** With connector_attempts: the hosts whose get_connector gave nothing, and why. */
  connectorErrors: Record<string, string> | undefined,
): Promise<FleetRefreshResult> {
  const { refreshFleet } = await import('../actions/fleet/fleet');
  // A live progress line on a terminal (the CLI); Ansible's stderr is never one.
  const progress = onProgress ?? (process.stderr.isTTY === true ? writeProgress : undefined);
  const result = await refreshFleet(deps, filters, {
    ...settings,
    maxParallel: args.max_parallel,
    perHostParallel: args.per_host_parallel,
    maxFailures: args.max_failures,
    reportPath: args.report_path,
    onProgress: progress,
  });
  // Failure messages and why a host gave no connector come from outside systems: scrubbed like msg.
  if (connectorErrors !== undefined) {
    result.connector_errors = Object.fromEntries(Object.entries(connectorErrors).map(([host, why]) => [host, scrubber.scrub(why)]));
    result.summary.push(...Object.entries(result.connector_errors).map(([host, why]) => connectorErrorLine(host, why)));
  }
  for (const f of result.failures) f.msg = scrubber.scrub(f.msg);
  result.summary = result.summary.map((line) => scrubber.scrub(line));
  return result;
}

function writeProgress(p: FleetProgress): void {
  const line = `${p.instancesDone}/${p.instances} instances: ${p.refreshed} refreshed, ${p.skipped} skipped, ${p.failed} failed`;
  process.stderr.write(`\r${line}${p.instancesDone === p.instances ? '\n' : ''}`);
}
