import type { ErrorObject } from 'ajv';
import { OPTION_NAMES, type ModuleArgs } from './schema';
import { validateArgs as validateSchema } from './schema-validator';
import { BadInput } from '../errors';

/** What Ansible itself passes besides the user's options (only the ones we honour). */
export interface AnsibleFlags {
  checkMode: boolean;
  diff: boolean;
  verbosity: number;
}

export interface ParsedInput {
  args: ModuleArgs;
  ansible: AnsibleFlags;
}

/**
 * Validates raw module input (already JSON-parsed). Strips and interprets `_ansible_*` keys,
 * applies defaults, and enforces the selector rules the schema cannot say clearly.
 */
export function parseModuleInput(raw: unknown): ParsedInput {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new BadInput('module arguments must be a JSON object');
  }
  // fromEntries defines own keys: a JSON "__proto__" key is then an unsupported parameter,
  // not the prototype of the options (whose keys would pass unseen as inherited options).
  const entries = Object.entries(raw);
  const internal: Record<string, unknown> = Object.fromEntries(entries.filter(([key]) => key.startsWith('_ansible_')));
  // Ansible sends unset options as null; treat them as absent so defaults apply.
  const user: Record<string, unknown> = Object.fromEntries(entries.filter(([key, value]) => !key.startsWith('_ansible_') && value !== null && value !== undefined));

  const unknown = Object.keys(user).filter((k) => !OPTION_NAMES.includes(k));
  if (unknown.length > 0) {
    throw new BadInput(
      `Unsupported parameters for (osops.nova.bdm) module: ${listShort(unknown.sort())}. ` +
        `Supported parameters include: ${OPTION_NAMES.join(', ')}.`,
    );
  }
  if (!validateSchema(user)) {
    throw new BadInput(describeSchemaErrors(validateSchema.errors ?? []));
  }
  const args = user as ModuleArgs;
  checkSelectors(args);
  return {
    args,
    ansible: {
      checkMode: internal._ansible_check_mode === true,
      diff: internal._ansible_diff === true,
      verbosity: typeof internal._ansible_verbosity === 'number' ? internal._ansible_verbosity : 0,
    },
  };
}

/** Names echoed from the input: each clipped, at most 20, so a hostile input cannot make msg huge. */
function listShort(names: string[]): string {
  const clip = (n: string) => JSON.stringify(n.length > 64 ? `${n.slice(0, 64)}...` : n).slice(1, -1);
  const shown = names.slice(0, 20).map(clip).join(', ');
  return names.length > 20 ? `${shown} and ${names.length - 20} more` : shown;
}

const AUDIT_ONLY = ['hosts', 'instance_uuids', 'volume_ids', 'project_id', 'driver_volume_type', 'report_path'] as const;

function checkSelectors(args: ModuleArgs): void {
  if (args.action === 'get_connector') {
    for (const option of ['bdm_uuid', 'instance_uuid', 'volume_id', 'connector', 'connector_path'] as const) {
      if (args[option] !== undefined) throw new BadInput(`${option} does not apply to action get_connector (it reads this host only)`);
    }
    return;
  }
  if (args.host_root !== '/') throw new BadInput('host_root is only used by action get_connector');
  if (args.action === 'audit') {
    for (const option of ['bdm_uuid', 'instance_uuid', 'volume_id', 'connector', 'connector_path', 'force'] as const) {
      if (args[option] !== undefined && !(option === 'force' && args.force === false)) {
        throw new BadInput(`${option} does not apply to action audit (filter with hosts, instance_uuids, volume_ids, project_id, driver_volume_type)`);
      }
    }
    return;
  }
  for (const option of AUDIT_ONLY) {
    if (args[option] !== undefined) throw new BadInput(`${option} is only used by action audit`);
  }
  const selectors = 'one of bdm_uuid, or instance_uuid (with an optional volume_id)';
  if (args.bdm_uuid !== undefined && args.instance_uuid !== undefined) {
    throw new BadInput(`bdm_uuid and instance_uuid are mutually exclusive: give ${selectors}`);
  }
  if (args.bdm_uuid !== undefined && args.volume_id !== undefined) {
    throw new BadInput(`volume_id goes with instance_uuid, not with bdm_uuid: give ${selectors}`);
  }
  if (args.volume_id !== undefined && args.instance_uuid === undefined) {
    throw new BadInput(`volume_id needs instance_uuid: give ${selectors}`);
  }
  if (args.bdm_uuid === undefined && args.instance_uuid === undefined) {
    throw new BadInput(`no BDM selected: give ${selectors}`);
  }
  if (args.action === 'refresh') {
    if (args.instance_uuid !== undefined && args.volume_id === undefined) {
      throw new BadInput('refresh works on one BDM: give bdm_uuid, or instance_uuid with volume_id');
    }
    if ((args.connector === undefined) === (args.connector_path === undefined)) {
      throw new BadInput("refresh needs the compute host's connector: give exactly one of connector or connector_path");
    }
  } else {
    for (const option of ['connector', 'connector_path', 'rpc_timeout', 'cinder_auth', 'expect'] as const) {
      if (args[option] !== undefined) throw new BadInput(`${option} is only used by action refresh`);
    }
  }
}

/** One line naming the option, the problem and the valid choices. */
export function describeSchemaErrors(errors: ErrorObject[]): string {
  // anyOf (config_file) reports each branch; the top-level anyOf error alone is clearer.
  // Compared with the few anyOf errors only: allErrors gives one error per bad item of a list,
  // and all-against-all was quadratic (300,000 bad UUIDs took minutes).
  const anyOfs = errors.filter((o) => o.keyword === 'anyOf');
  const wanted = errors.filter(
    (e) => !anyOfs.some((o) => o !== e && e.instancePath.startsWith(o.instancePath) && e.schemaPath.includes('/anyOf/')),
  );
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const e of wanted) {
    const line = describeSchemaError(e);
    if (!seen.has(line)) {
      seen.add(line);
      parts.push(line);
    }
  }
  // allErrors lists every bad key of a hostile input: a few say it, thousands drown it.
  return parts.length > 5 ? `${parts.slice(0, 5).join('; ')}; and ${parts.length - 5} more problems` : parts.join('; ');
}

function describeSchemaError(e: ErrorObject): string {
  const option = e.instancePath.replace(/^\//, '').split('/')[0] || 'arguments';
  switch (e.keyword) {
    case 'enum':
      return `value of ${option} must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      return `${option} is not a valid UUID (expected the form 8-4-4-4-12 hex digits)`;
    case 'type':
      return `${option} must be of type ${String(e.params.type)}`;
    case 'anyOf':
      return `${option} must be a path or a non-empty list of paths`;
    case 'exclusiveMinimum':
    case 'maximum':
      return `${option} ${e.message ?? 'is out of range'} (seconds)`;
    case 'additionalProperties':
      return `${option} has an unsupported key: ${listShort([String(e.params.additionalProperty)])}`;
    case 'minLength':
      return `${option} must not be empty`;
    default:
      return `${option}: ${e.message ?? 'invalid'}`;
  }
}
