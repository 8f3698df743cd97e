import type { ErrorObject } from 'ajv';
import { argsSchema, OPTION_NAMES, type ModuleArgs } from './schema';
import { coerceOptions, type CoercibleSchema } from './coerce';
import { validateArgs as validateSchema } from './schema-validator';
import { BadInput } from '../errors';
import type { Selection } from '../selection';
import { FLEET_FILTERS, given, isFleetRefresh, parseSelection } from './selection';

export { FLEET_FILTERS, isFleetRefresh };

/** What Ansible itself passes besides the user's options (only the ones we honour). */
export interface AnsibleFlags {
  checkMode: boolean;
  diff: boolean;
  verbosity: number;
}

export interface ParsedInput {
  args: ModuleArgs;
  /** The BDMs the options select, parsed once: every action reads this, not the options. */
  selection: Selection;
  ansible: AnsibleFlags;
}

/** The options with their values converted to the schema's types, as AnsibleModule does (coerce.ts). */
export function coerceModuleOptions(user: Record<string, unknown>): Record<string, unknown> {
  return coerceOptions(user, argsSchema.properties as Readonly<Record<string, CoercibleSchema>>);
}

/**
 * Validates raw module input (already JSON-parsed). Strips and interprets `_ansible_*` keys,
 * converts string values to the schema's types, applies defaults, and enforces the selector
 * rules the schema cannot say clearly.
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
  const user: Record<string, unknown> = Object.fromEntries(
    entries.filter(([key, value]) => !key.startsWith('_ansible_') && value !== null && value !== undefined),
  );

  const unknown = Object.keys(user).filter((k) => !OPTION_NAMES.includes(k));
  if (unknown.length > 0) {
    throw new BadInput(
      `Unsupported parameters for (osops.nova.bdm) module: ${listShort(unknown.sort())}. ` +
        `Supported parameters include: ${OPTION_NAMES.join(', ')}.`,
    );
  }
  const converted = coerceModuleOptions(user);
  if (!validateSchema(converted)) {
    throw new BadInput(describeSchemaErrors(validateSchema.errors ?? []));
  }
  const args = converted as ModuleArgs;
  checkSelectors(args);
  return {
    args,
    selection: parseSelection(args),
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

const FLEET_ONLY = [...FLEET_FILTERS, 'report_path'] as const;
const CONNECTOR_SOURCES = ['connector', 'connector_path', 'connectors', 'connector_dir', 'connector_attempts'] as const;

/** The audit's output options; stale_limit at its default is no choice of the user's. */
function checkAuditOutputOptions(args: ModuleArgs): void {
  if (args.action === 'audit') return;
  if (args.metrics_path !== undefined) throw new BadInput('metrics_path is only used by action audit');
  if (args.stale_limit !== argsSchema.properties.stale_limit.default) throw new BadInput('stale_limit is only used by action audit');
}

/** Which options go with which action and selection; the Selection itself is parsed after (selection.ts). */
function checkSelectors(args: ModuleArgs): void {
  checkAuditOutputOptions(args);
  if ((args.action === 'show' || args.action === 'get_connector') && args.running_instances !== 'skip') {
    throw new BadInput(`running_instances is only used by action refresh and audit`);
  }
  if (args.action === 'get_connector') {
    const why = (o: string) => `${o} does not apply to action get_connector (it reads this host only)`;
    return refuse(args, [...ONE_BDM, ...CONNECTOR_SOURCES], why);
  }
  if (args.host_root !== '/') throw new BadInput('host_root is only used by action get_connector');
  if (args.action === 'audit') return checkAuditSelectors(args);
  if (isFleetRefresh(args)) return checkFleetRefreshSelectors(args);
  refuse(
    args,
    FLEET_ONLY,
    (o) => `${o} is only used by action audit and by a fleet refresh`,
    (o) => given(args, o),
  );
  checkOneBdm(args);
  if (args.action === 'refresh') return checkSingleRefreshSelectors(args);
  refuse(args, [...CONNECTOR_SOURCES, 'rpc_timeout', 'cinder_auth', 'expect'], (o) => `${o} is only used by action refresh`);
}

const ONE_BDM = ['bdm_uuid', 'instance_uuid', 'volume_id'] as const;

/** Throws for the first of `options` that is set (by default: given at all), saying why it does not apply. */
function refuse(
  args: ModuleArgs,
  options: ReadonlyArray<keyof ModuleArgs>,
  why: (option: string) => string,
  isSet: (option: keyof ModuleArgs) => boolean = (o) => args[o] !== undefined,
): void {
  const option = options.find(isSet);
  if (option !== undefined) throw new BadInput(why(option));
}

function checkAuditSelectors(args: ModuleArgs): void {
  const why = (o: string) => `${o} does not apply to action audit (filter with ${FLEET_FILTERS.join(', ')})`;
  refuse(args, [...ONE_BDM, ...CONNECTOR_SOURCES], why);
  if (args.force) throw new BadInput(why('force'));
}

function checkFleetRefreshSelectors(args: ModuleArgs): void {
  refuse(
    args,
    ONE_BDM,
    (o) =>
      `${o} selects one BDM and cannot be combined with the fleet filters (${FLEET_FILTERS.filter((f) => given(args, f)).join(', ')}); ` +
      'use bdm_uuids, instance_uuids, volume_ids or volume_attachments',
  );
  checkConnectorSources(args, {
    both: 'connector and connector_path are mutually exclusive',
    none:
      'a fleet refresh needs the connector of every compute host: ' +
      'give connectors (host -> connector) and/or connector_dir (<host>.json files)',
  });
}

/** show and a single refresh: bdm_uuid, or instance_uuid with an optional volume_id. */
function checkOneBdm(args: ModuleArgs): void {
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
  if (args.bdm_uuid !== undefined || args.instance_uuid !== undefined) return;
  if (args.action === 'refresh') {
    throw new BadInput(
      'no BDM selected: give bdm_uuid, or instance_uuid with volume_id, ' +
        `or at least one fleet filter (${FLEET_FILTERS.join(', ')}); a refresh never means the whole cloud`,
    );
  }
  throw new BadInput(`no BDM selected: give ${selectors}`);
}

function checkSingleRefreshSelectors(args: ModuleArgs): void {
  if (args.instance_uuid !== undefined && args.volume_id === undefined) {
    throw new BadInput(
      'refresh works on one BDM: give bdm_uuid, or instance_uuid with volume_id (instance_uuids refreshes every BDM of those instances)',
    );
  }
  checkConnectorSources(args, {
    both: "refresh needs the compute host's connector: give exactly one of connector or connector_path",
    none: "refresh needs the compute host's connector: give exactly one of connector or connector_path (or connectors / connector_dir)",
  });
}

/** A refresh needs a connector source, and connector and connector_path exclude each other. */
function checkConnectorSources(args: ModuleArgs, messages: { both: string; none: string }): void {
  if (args.connector !== undefined && args.connector_path !== undefined) throw new BadInput(messages.both);
  if (!CONNECTOR_SOURCES.some((o) => args[o] !== undefined)) throw new BadInput(messages.none);
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

const SECONDS_OPTIONS = new Set(['rpc_timeout', 'connect_timeout', 'timeout']);

/**
 * The option an error is about: a list of plain values is named once for all its items; a key
 * inside a list of dicts by its place (volume_attachments[1].volume_id).
 */
function optionOf(instancePath: string, aboutDict: boolean): string {
  const [option, index, key] = instancePath.replace(/^\//, '').split('/');
  if (!option) return 'arguments';
  if (!/^\d+$/.test(index ?? '')) return option;
  if (key !== undefined) return `${option}[${index}].${key}`;
  return aboutDict ? `${option}[${index}]` : option;
}

/** The forms an option with alternatives (anyOf in the schema) accepts. */
const ANY_OF_CHOICES: Record<string, string> = {
  config_file: 'must be a path or a non-empty list of paths',
  connectors: 'must map each host to its connector: a dict, or the JSON text get_connector --json printed',
};

function describeSchemaError(e: ErrorObject): string {
  const option = optionOf(e.instancePath, e.keyword === 'additionalProperties');
  switch (e.keyword) {
    case 'enum':
      return `value of ${option} must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      return `${option} is not a valid UUID (expected the form 8-4-4-4-12 hex digits)`;
    case 'type':
      return `${option} must be of type ${String(e.params.type)}`;
    case 'anyOf':
      return `${option} ${ANY_OF_CHOICES[option] ?? 'is not one of the accepted forms'}`;
    case 'exclusiveMinimum':
    case 'minimum':
    case 'maximum':
      return `${option} ${e.message ?? 'is out of range'}${SECONDS_OPTIONS.has(option) ? ' (seconds)' : ''}`;
    case 'additionalProperties':
      return `${option} has an unsupported key: ${listShort([String(e.params.additionalProperty)])}`;
    case 'minLength':
      return `${option} must not be empty`;
    default:
      return `${option}: ${e.message ?? 'invalid'}`;
  }
}
