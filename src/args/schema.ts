import type { FromSchema } from 'json-schema-to-ts';

// The one definition of the module's options. The TypeScript type, the validator and
// (later) the Ansible sidecar documentation are all derived from or checked against it.
const uuidPattern = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

export const ACTIONS = ['show'] as const;

export const argsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    action: {
      type: 'string',
      enum: ACTIONS,
      default: 'show',
      description: 'What to do with the selected block device mapping(s).',
    },
    bdm_uuid: {
      type: 'string',
      pattern: uuidPattern,
      description: 'UUID of the block device mapping (looked up in every cell).',
    },
    instance_uuid: {
      type: 'string',
      pattern: uuidPattern,
      description: 'UUID of the instance; with no volume_id, every volume BDM of it.',
    },
    volume_id: {
      type: 'string',
      pattern: uuidPattern,
      description: 'Cinder volume id; needs instance_uuid.',
    },
    config_file: {
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
      ],
      default: '/etc/nova/nova.conf',
      description: 'nova.conf path, or a list of paths; later files override earlier ones, as with oslo.config.',
    },
    api_database_connection: {
      type: 'string',
      minLength: 1,
      description: 'SQLAlchemy URL of the Nova API database; overrides [api_database] connection.',
      secret: true,
    },
    database_connection: {
      type: 'string',
      minLength: 1,
      description: 'SQLAlchemy URL of the local cell database; overrides [database] connection (fills templated cell URLs).',
      secret: true,
    },
    reveal_secrets: {
      type: 'boolean',
      default: false,
      description: 'Show passwords, keyrings and other secrets inside connection_info instead of masking them.',
    },
    connect_timeout: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 600,
      default: 10,
      description: 'Seconds to wait for each database connection.',
    },
  },
} as const;

export type ModuleArgs = FromSchema<typeof argsSchema>;

/** The option names; Ansible-style "supported parameters" messages list them. */
export const OPTION_NAMES = Object.keys(argsSchema.properties).sort();

/** Options whose values must never be echoed (Ansible's no_log). */
export const SECRET_OPTIONS = Object.entries(argsSchema.properties)
  .filter(([, spec]) => 'secret' in spec && spec.secret)
  .map(([name]) => name);
