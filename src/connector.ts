import type { FromSchema } from 'json-schema-to-ts';

/**
 * The host connector os-brick's get_connector_properties reports on a compute (openstack/os-brick
 * os_brick/initiator/connector.py). Cinder's drivers need these; the rest depends on the host.
 * A shared leaf: args/ checks input against this schema, the actions hand the typed value to Cinder.
 */
export const connectorSchema = {
  $id: 'nova-bdm-connector',
  type: 'object',
  required: ['host', 'ip', 'platform', 'os_type', 'multipath'],
  properties: {
    host: { type: 'string', minLength: 1 },
    ip: { type: 'string', minLength: 1 },
    platform: { type: 'string' },
    os_type: { type: 'string' },
    multipath: { type: 'boolean' },
    initiator: { type: 'string' },
    wwpns: { type: 'array', items: { type: 'string' } },
    wwnns: { type: 'array', items: { type: 'string' } },
    nqn: { type: 'string' },
    uuid: { type: 'string' },
    'system uuid': { type: 'string' },
    do_local_attach: { type: 'boolean' },
    nvme_native_multipath: { type: 'boolean' },
    mountpoint: { type: 'string' },
    mode: { type: 'string', enum: ['rw', 'ro'] },
  },
} as const;

export type Connector = FromSchema<typeof connectorSchema> & Record<string, unknown>;
