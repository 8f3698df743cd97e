// The human command line. It mirrors the surfaces operators know (nova-manage
// `volume_attachment show` and the blueprint's `bdm show`) and builds the same module
// arguments Ansible would send, so every way in shares one core.

export const USAGE = `usage: nova-bdm [--config-file PATH]... COMMAND ...

Show the block device mappings (BDMs) Nova keeps for Cinder volumes.

commands:
  bdm show BDM_UUID                               one BDM, found in whichever cell holds it
  volume_attachment show INSTANCE_UUID VOLUME_ID  the BDM of a volume attached to an instance
                                                  (as nova-manage volume_attachment show)
  bdm refresh BDM_UUID --connector-path FILE      refresh the BDM's connection_info: new Cinder
                                                  attachment, old one removed, BDM updated
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
  --host HOST          (audit) only instances on this compute host; repeatable
  --project ID         (audit) only this project's instances
  --driver-volume-type T (audit) only BDMs of this type (rbd, iscsi, ...)
  --report-path FILE   (audit) also write the full JSON report there (mode 0600)
  --check              (refresh) check every precondition and say what would change; write nothing
  -h, --help           show this help

As an Ansible module: bdm.cjs ARGS_FILE (Ansible's calling convention), or
bdm.cjs - to read the same JSON arguments from stdin.

audit exits 0 when nothing is stale, 4 when stale BDMs were found, 1 when a cell
could not be audited.

exit codes (as nova-manage): show: 0 ok, 1 unexpected error, 2 instance not found,
3 volume not attached. refresh: 0 ok, 1 unexpected error, 2 connector path missing,
3 connector unreadable, 4 instance not found, 5 instance state invalid, 6 volume not
attached. 64 wrong usage.`;

export interface CliRender {
  json: boolean;
  connectionInfoOnly: boolean;
}

export type CliCommand =
  | { kind: 'help' }
  | { kind: 'usage-error'; message: string }
  | { kind: 'run'; moduleArgs: Record<string, unknown>; render: CliRender };

export function parseCli(argv: readonly string[]): CliCommand {
  const positional: string[] = [];
  const configFiles: string[] = [];
  const render: CliRender = { json: false, connectionInfoOnly: false };
  const moduleArgs: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    const [flag, inlineValue] = word.startsWith('--') && word.includes('=') ? [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)] : [word, undefined];
    const value = (): string | undefined => inlineValue ?? argv[++i];
    switch (flag) {
      case '-h':
      case '--help':
        return { kind: 'help' };
      case '--json':
        render.json = true;
        break;
      case '--connection_info':
      case '--connection-info':
        render.connectionInfoOnly = true;
        break;
      case '--reveal-secrets':
        moduleArgs.reveal_secrets = true;
        break;
      case '--config-file':
      case '--config_file': {
        const v = value();
        if (!v) return { kind: 'usage-error', message: '--config-file needs a path' };
        configFiles.push(v);
        break;
      }
      case '--connector-path':
      case '--connector_path': {
        const v = value();
        if (!v) return { kind: 'usage-error', message: '--connector-path needs a path' };
        moduleArgs.connector_path = v;
        break;
      }
      case '--rpc-timeout': {
        const v = Number(value());
        if (!Number.isFinite(v)) return { kind: 'usage-error', message: '--rpc-timeout needs a number of seconds' };
        moduleArgs.rpc_timeout = v;
        break;
      }
      case '--force':
        moduleArgs.force = true;
        break;
      case '--expect-json': {
        const v = value();
        try {
          moduleArgs.expect = JSON.parse(v ?? '');
        } catch {
          return { kind: 'usage-error', message: '--expect-json needs a JSON object, e.g. \'{"data": {"hosts": ["10.0.0.1"]}}\'' };
        }
        break;
      }
      case '--check-cinder':
        moduleArgs.check_cinder = true;
        break;
      case '--host': {
        const v = value();
        if (!v) return { kind: 'usage-error', message: '--host needs a host name' };
        moduleArgs.hosts = [...((moduleArgs.hosts as string[] | undefined) ?? []), v];
        break;
      }
      case '--project':
      case '--driver-volume-type':
      case '--report-path': {
        const v = value();
        if (!v) return { kind: 'usage-error', message: `${flag} needs a value` };
        moduleArgs[{ '--project': 'project_id', '--driver-volume-type': 'driver_volume_type', '--report-path': 'report_path' }[flag]] = v;
        break;
      }
      case '--no-require-libvirt':
        moduleArgs.require_libvirt = false;
        break;
      case '--check':
        moduleArgs._ansible_check_mode = true;
        break;
      case '--connect-timeout': {
        const v = Number(value());
        if (!Number.isFinite(v)) return { kind: 'usage-error', message: '--connect-timeout needs a number of seconds' };
        moduleArgs.connect_timeout = v;
        break;
      }
      default:
        if (word.startsWith('-')) return { kind: 'usage-error', message: `unknown option ${word}` };
        positional.push(word);
    }
  }
  if (configFiles.length > 0) moduleArgs.config_file = configFiles;

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
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'get_connector' }, render };
  }
  if (category === 'bdm' && action === 'audit') {
    if (rest.length !== 0) return { kind: 'usage-error', message: 'bdm audit takes no arguments (filter with --host, --project, --driver-volume-type)' };
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'audit' }, render };
  }
  if (category === 'bdm' && action === 'refresh') {
    if (rest.length !== 1) return { kind: 'usage-error', message: 'bdm refresh takes exactly one BDM_UUID' };
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'refresh', bdm_uuid: rest[0] }, render };
  }
  if (category === 'volume_attachment' && action === 'refresh') {
    if (rest.length !== 3 && !(rest.length === 2 && moduleArgs.connector_path)) {
      return { kind: 'usage-error', message: 'volume_attachment refresh takes INSTANCE_UUID VOLUME_ID CONNECTOR_PATH' };
    }
    const connectorPath = rest[2] ?? moduleArgs.connector_path;
    return { kind: 'run', moduleArgs: { ...moduleArgs, action: 'refresh', instance_uuid: rest[0], volume_id: rest[1], connector_path: connectorPath }, render };
  }
  if (category === undefined) return { kind: 'usage-error', message: 'no command given' };
  return { kind: 'usage-error', message: `unknown command: ${positional.slice(0, 2).join(' ')}` };
}
