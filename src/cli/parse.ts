import { parseArgs, type ParseArgsConfig } from 'node:util';
import { coerceModuleOptions, FLEET_FILTERS } from '../args/validate';
import { CoercionError } from '../args/coerce';

// The human command line, on Node's util.parseArgs. It mirrors the surfaces operators know
// (nova-manage `volume_attachment show` and the blueprint's `bdm show`) and builds the same
// module arguments Ansible would send: values stay text and go through the module's own
// conversion (args/coerce.ts), so every way in shares one core.

export const USAGE = `usage: nova-bdm [--config-file PATH]... COMMAND ...

Show the block device mappings (BDMs) Nova keeps for Cinder volumes.

commands:
  bdm show BDM_UUID                               one BDM, found in whichever cell holds it
  volume_attachment show INSTANCE_UUID VOLUME_ID  the BDM of a volume attached to an instance
                                                  (as nova-manage volume_attachment show)
  bdm refresh BDM_UUID --connector-path FILE      refresh the BDM's connection_info: new Cinder
                                                  attachment, old one removed, BDM updated
  bdm refresh FILTERS --connector-dir DIR         refresh every stale BDM the filters select, in
                                                  parallel (one plan; --check shows it)
  volume_attachment refresh INSTANCE_UUID VOLUME_ID CONNECTOR_PATH
                                                  the same, as nova-manage volume_attachment refresh
  get_connector                                   this compute host's connector, for refresh
                                                  (as nova-manage volume_attachment get_connector)
  bdm audit                                       every attached volume BDM in every cell: which
                                                  are stale and why (writes nothing)

options:
  --config-file PATH   nova.conf to read; repeat for more (later files override).
                       Default: /etc/nova/nova.conf
  --json               print JSON instead of a table
  --connection_info    print only the connection_info
  --reveal-secrets     print passwords and keyrings inside connection_info unmasked
  --connect-timeout S  seconds to wait for each database connection (default 10)
  --connector-path F   (refresh) JSON connector of the instance's compute host
                       (from 'nova-manage volume_attachment get_connector --json' there)
  --rpc-timeout S      (refresh) seconds to wait for the compute (default
                       [DEFAULT] rpc_response_timeout, 60)
  --no-require-libvirt (refresh) also refresh on non-libvirt computes, at your own risk
  --expect-json JSON   (refresh, audit) partial connection_info the BDM must match, e.g.
                       '{"driver_volume_type": "rbd", "data": {"hosts": [...], "ports": [...]}}'
  --force              (refresh) refresh even when the BDM is not stale
  --check-cinder       (audit) also ask Cinder about every attachment
  --host HOST          (audit, fleet refresh) only instances on this compute host; repeatable
  --cell CELL          (audit, fleet refresh) only this cell (name or uuid); repeatable
  --instance UUID      (audit, fleet refresh) only this instance; repeatable
  --volume UUID        (audit, fleet refresh) only this volume; repeatable
  --bdm UUID           (audit, fleet refresh) only this BDM; repeatable
  --volume-attachment INSTANCE_UUID[:VOLUME_ID]
                       (audit, fleet refresh) only this instance's BDM of this volume
                       (all of its volume BDMs without :VOLUME_ID); repeatable, each named
                       exactly (not with --instance, --volume or --bdm)
  --project ID         (audit, fleet refresh) only this project's instances
  --driver-volume-type T (audit, fleet refresh) only BDMs of this type (rbd, iscsi, ...)
  --report-path FILE   (audit, fleet refresh) also write the full JSON result there (mode 0600)
  --metrics-file FILE  (audit) also write the counts in the Prometheus text format there
                       (mode 0644), e.g. for node_exporter's textfile collector
  --stale-limit N      (audit) list at most N stale BDMs (default 1000; the counts cover all)
  --connector-dir DIR  (fleet refresh) <host>.json connector files, one per compute host
  --max-parallel N     (fleet refresh) instances refreshed at once (default 8)
  --per-host-parallel N (fleet refresh) instances at once on one compute host (default 2)
  --max-failures N     (fleet refresh) start nothing new after N failed BDMs
  --refuse-locked      (refresh, audit) do not refresh instances someone else locked
  --running-instances skip|online
                       (refresh, audit) skip running instances (default), or refresh
                       their rbd BDMs online: no RPC, the guest untouched
  --check              (refresh) check every precondition and say what would change; write nothing
  -h, --help           show this help

As an Ansible module: bdm.cjs ARGS_FILE (Ansible's calling convention), or
bdm.cjs - to read the same JSON arguments from stdin.

audit exits 0 when nothing is stale, 4 when stale BDMs were found, 1 when a cell
could not be audited.

exit codes (as nova-manage): show: 0 ok, 1 unexpected error, 2 instance not found,
3 volume not attached. refresh: 0 ok, 1 unexpected error, 2 connector path missing,
3 connector unreadable, 4 instance not found, 5 instance state invalid, 6 volume not
attached, 7 connector host is not the instance's host. A fleet refresh: 0 when no BDM
failed, 1 otherwise. 64 wrong usage.`;

export interface CliRender {
  json: boolean;
  connectionInfoOnly: boolean;
}

export type CliCommand =
  { kind: 'help' } | { kind: 'usage-error'; message: string } | { kind: 'run'; moduleArgs: Record<string, unknown>; render: CliRender };

/**
 * One flag. `names` are its long spellings, the first one canonical (in --help and messages).
 * `switch` takes no value and sets `set` (default true); `value` takes one (the last given
 * wins); `list` is repeatable and collects its values in order into a list argument.
 */
interface Flag {
  names: readonly string[];
  short?: string;
  kind: 'switch' | 'value' | 'list';
  /** A list flag's value as the module argument's item (default: the text itself). */
  item?: (value: string) => unknown;
  /** The module argument it sets, or a render setting, or help. */
  to: { arg: string; set?: unknown } | { render: keyof CliRender } | 'help';
}

const FLAGS: readonly Flag[] = [
  { names: ['help'], short: 'h', kind: 'switch', to: 'help' },
  { names: ['json'], kind: 'switch', to: { render: 'json' } },
  { names: ['connection_info', 'connection-info'], kind: 'switch', to: { render: 'connectionInfoOnly' } },
  { names: ['config-file', 'config_file'], kind: 'list', to: { arg: 'config_file' } },
  { names: ['reveal-secrets'], kind: 'switch', to: { arg: 'reveal_secrets' } },
  { names: ['connect-timeout'], kind: 'value', to: { arg: 'connect_timeout' } },
  { names: ['connector-path', 'connector_path'], kind: 'value', to: { arg: 'connector_path' } },
  { names: ['rpc-timeout'], kind: 'value', to: { arg: 'rpc_timeout' } },
  { names: ['no-require-libvirt'], kind: 'switch', to: { arg: 'require_libvirt', set: false } },
  { names: ['expect-json'], kind: 'value', to: { arg: 'expect' } },
  { names: ['force'], kind: 'switch', to: { arg: 'force' } },
  { names: ['check-cinder'], kind: 'switch', to: { arg: 'check_cinder' } },
  { names: ['host'], kind: 'list', to: { arg: 'hosts' } },
  { names: ['cell'], kind: 'list', to: { arg: 'cells' } },
  { names: ['instance'], kind: 'list', to: { arg: 'instance_uuids' } },
  { names: ['volume'], kind: 'list', to: { arg: 'volume_ids' } },
  { names: ['bdm'], kind: 'list', to: { arg: 'bdm_uuids' } },
  { names: ['volume-attachment', 'volume_attachment'], kind: 'list', to: { arg: 'volume_attachments' }, item: volumeAttachmentOf },
  { names: ['connector-dir'], kind: 'value', to: { arg: 'connector_dir' } },
  { names: ['max-parallel'], kind: 'value', to: { arg: 'max_parallel' } },
  { names: ['per-host-parallel'], kind: 'value', to: { arg: 'per_host_parallel' } },
  { names: ['max-failures'], kind: 'value', to: { arg: 'max_failures' } },
  { names: ['refuse-locked'], kind: 'switch', to: { arg: 'refuse_locked' } },
  { names: ['running-instances'], kind: 'value', to: { arg: 'running_instances' } },
  { names: ['project'], kind: 'value', to: { arg: 'project_id' } },
  { names: ['driver-volume-type'], kind: 'value', to: { arg: 'driver_volume_type' } },
  { names: ['report-path'], kind: 'value', to: { arg: 'report_path' } },
  { names: ['metrics-file'], kind: 'value', to: { arg: 'metrics_path' } },
  { names: ['stale-limit'], kind: 'value', to: { arg: 'stale_limit' } },
  { names: ['check'], kind: 'switch', to: { arg: '_ansible_check_mode' } },
];

/** INSTANCE_UUID:VOLUME_ID (nova-manage's pair), or INSTANCE_UUID alone; the module checks the UUIDs. */
function volumeAttachmentOf(value: string): Record<string, string> {
  const [instanceUuid, ...volume] = value.split(':');
  return volume.length === 0 ? { instance_uuid: instanceUuid! } : { instance_uuid: instanceUuid!, volume_id: volume.join(':') };
}

const FLAG_BY_NAME = new Map(FLAGS.flatMap((f) => [...f.names.map((n) => [n, f] as const), ...(f.short ? [[f.short, f] as const] : [])]));

const PARSE_OPTIONS: ParseArgsConfig['options'] = Object.fromEntries(
  FLAGS.flatMap((f) =>
    f.names.map(
      (n, i) => [n, { type: f.kind === 'switch' ? 'boolean' : 'string', ...(i === 0 && f.short ? { short: f.short } : {}) }] as const,
    ),
  ),
);

/** The canonical --flag that sets a module argument, for messages. */
function flagOf(arg: string): string {
  const flag = FLAGS.find((f) => typeof f.to === 'object' && 'arg' in f.to && f.to.arg === arg);
  return flag ? `--${flag.names[0]}` : arg;
}

/** Node's parseArgs messages, in our one-line style. */
function usageMessage(err: Error & { code?: string }): string {
  const flag = /'(-[^ ']+)/.exec(err.message)?.[1] ?? '';
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${shownWord(flag)}`;
  if (/does not take an argument/.test(err.message)) return `${flag} takes no value`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `${flag} needs a value`;
  return shownWord(err.message.split('\n')[0]!);
}

export function parseCli(argv: readonly string[]): CliCommand {
  const terminator = argv.indexOf('--');
  if ((terminator < 0 ? argv : argv.slice(0, terminator)).some((w) => w === '-h' || w === '--help')) return { kind: 'help' };
  let tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>;
  try {
    tokens = parseArgs({ args: [...argv], options: PARSE_OPTIONS, allowPositionals: true, strict: true, tokens: true }).tokens!;
  } catch (err) {
    return { kind: 'usage-error', message: usageMessage(err as Error) };
  }
  const positional: string[] = [];
  const render: CliRender = { json: false, connectionInfoOnly: false };
  const moduleArgs: Record<string, unknown> = {};
  for (const token of tokens) {
    if (token.kind === 'positional') positional.push(token.value);
    if (token.kind !== 'option') continue;
    const flag = FLAG_BY_NAME.get(token.name)!;
    if (flag.kind !== 'switch' && !token.value) return { kind: 'usage-error', message: `--${flag.names[0]} needs a value` };
    if (flag.to === 'help') return { kind: 'help' };
    if ('render' in flag.to) {
      render[flag.to.render] = true;
    } else if (flag.kind === 'switch') {
      moduleArgs[flag.to.arg] = flag.to.set ?? true;
    } else if (flag.kind === 'list') {
      moduleArgs[flag.to.arg] = [
        ...((moduleArgs[flag.to.arg] as unknown[] | undefined) ?? []),
        flag.item ? flag.item(token.value!) : token.value,
      ];
    } else {
      moduleArgs[flag.to.arg] = token.value;
    }
  }
  try {
    // The module's own conversion: "--rpc-timeout 30" becomes 30 exactly as rpc_timeout=30 would.
    Object.assign(moduleArgs, coerceModuleOptions(moduleArgs));
  } catch (err) {
    if (!(err instanceof CoercionError)) throw err;
    return { kind: 'usage-error', message: `${flagOf(err.option.split(/[.[]/)[0]!)}: ${shownWord(err.detail)}` };
  }
  return command(positional, moduleArgs, render);
}

function command(positional: readonly string[], moduleArgs: Record<string, unknown>, render: CliRender): CliCommand {
  const [category, action, ...rest] = positional;
  if (category === 'bdm' && action === 'show') {
    if (rest.length !== 1) return { kind: 'usage-error', message: 'bdm show takes exactly one BDM_UUID' };
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'show', bdm_uuid: rest[0] }, render };
  }
  if (category === 'volume_attachment' && action === 'show') {
    if (rest.length !== 2) return { kind: 'usage-error', message: 'volume_attachment show takes INSTANCE_UUID VOLUME_ID' };
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'show', instance_uuid: rest[0], volume_id: rest[1] }, render };
  }
  if (category === 'get_connector' || (category === 'volume_attachment' && action === 'get_connector')) {
    const extra = category === 'get_connector' ? positional.slice(1) : rest;
    if (extra.length !== 0) return { kind: 'usage-error', message: `get_connector takes no arguments (got ${shownWord(extra[0]!)})` };
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'get_connector' }, render };
  }
  if (category === 'bdm' && action === 'audit') {
    if (rest.length !== 0)
      return { kind: 'usage-error', message: 'bdm audit takes no arguments (filter with --host, --project, --driver-volume-type)' };
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'audit' }, render };
  }
  if (category === 'bdm' && action === 'refresh') {
    const filtered = FLEET_FILTERS.some((f) => moduleArgs[f] !== undefined);
    if (rest.length === 0 && filtered) return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'refresh' }, render };
    if (rest.length === 0) {
      return {
        kind: 'usage-error',
        message:
          'bdm refresh needs a BDM_UUID, or at least one filter (--host, --cell, --instance, --volume, --bdm, --volume-attachment, --project, --driver-volume-type) for a fleet refresh',
      };
    }
    if (rest.length !== 1 || filtered)
      return { kind: 'usage-error', message: 'bdm refresh takes exactly one BDM_UUID, or filters (not both)' };
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'refresh', bdm_uuid: rest[0] }, render };
  }
  if (category === 'volume_attachment' && action === 'refresh') {
    if (rest.length !== 3 && !(rest.length === 2 && moduleArgs.connector_path)) {
      return { kind: 'usage-error', message: 'volume_attachment refresh takes INSTANCE_UUID VOLUME_ID CONNECTOR_PATH' };
    }
    const connectorPath = rest[2] ?? moduleArgs.connector_path;
    return {
      kind: 'run',
      moduleArgs: { ...moduleArgs, action: 'refresh', instance_uuid: rest[0], volume_id: rest[1], connector_path: connectorPath },
      render,
    };
  }
  if (category === undefined) return { kind: 'usage-error', message: 'no command given' };
  return { kind: 'usage-error', message: `unknown command: ${positional.slice(0, 2).map(shownWord).join(' ')}` };
}

/** A word of the command line echoed in an error: on one line, and short, whatever it holds. */
function shownWord(word: string): string {
  const clipped = word.length > 100 ? `${word.slice(0, 100)}...` : word;
  return /[\u0000-\u001f\u007f\u2028\u2029]/.test(clipped) ? JSON.stringify(clipped) : clipped;
}
