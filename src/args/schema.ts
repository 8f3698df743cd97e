import type { FromSchema } from 'json-schema-to-ts';

// The one definition of the module's options. The TypeScript type, the validator and
// (later) the Ansible sidecar documentation are all derived from or checked against it.
const uuidPattern = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

export const ACTIONS = ['show', 'refresh', 'audit', 'get_connector'] as const;

export const argsSchema = {
  $id: 'nova-bdm-args',
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
    hosts: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description: 'audit and fleet refresh: only instances on these compute hosts.',
    },
    instance_uuids: {
      type: 'array',
      items: { type: 'string', pattern: uuidPattern },
      description: 'audit and fleet refresh: only these instances.',
    },
    volume_ids: {
      type: 'array',
      items: { type: 'string', pattern: uuidPattern },
      description: 'audit and fleet refresh: only these volumes.',
    },
    bdm_uuids: {
      type: 'array',
      items: { type: 'string', pattern: uuidPattern },
      description: 'audit and fleet refresh: only these block device mappings.',
    },
    volume_attachments: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          instance_uuid: { type: 'string', pattern: uuidPattern },
          volume_id: { type: 'string', pattern: uuidPattern },
          bdm_uuid: { type: 'string', pattern: uuidPattern },
        },
      },
      description:
        'audit and fleet refresh: only these BDMs, each named exactly as {instance_uuid, volume_id} (as nova-manage volume_attachment), {instance_uuid} (every volume BDM of it) or {bdm_uuid}; not with instance_uuids, volume_ids or bdm_uuids.',
    },
    cells: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description: 'audit and fleet refresh: only these cells (names or uuids).',
    },
    project_id: {
      type: 'string',
      minLength: 1,
      description: "audit and fleet refresh: only this project's instances.",
    },
    driver_volume_type: {
      type: 'string',
      minLength: 1,
      description: 'audit and fleet refresh: only BDMs whose connection_info has this driver_volume_type (rbd, iscsi, ...).',
    },
    check_cinder: {
      type: 'boolean',
      default: false,
      description:
        "audit: also apply the Cinder rules (Cinder's attachment and volume lists read once, in pages of 1000; a GET only for an attachment they lack); refresh always does.",
    },
    cinder_concurrency: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      default: 8,
      description:
        'audit with check_cinder: Cinder requests in flight at once: the pages of its attachment and volume lists (from 4 up, half of it each, read side by side by offset; below, one page after another by marker), then the GETs for attachments the lists lack.',
    },
    report_path: {
      type: 'string',
      minLength: 1,
      description: 'audit and fleet refresh: also write the full JSON result to this file (mode 0600).',
    },
    metrics_path: {
      type: 'string',
      minLength: 1,
      description:
        "audit: also write the audit's counts in the Prometheus text format to this file (mode 0644), e.g. for node_exporter's textfile collector.",
    },
    stale_limit: {
      type: 'integer',
      minimum: 0,
      default: 1000,
      description: 'audit: return at most this many stale BDMs inline (the first found); the counts cover all, and report_path lists all.',
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
    connector: {
      type: 'object',
      description: "The compute host's connector (as `nova-manage volume_attachment get_connector --json` prints it); refresh only.",
    },
    connector_path: {
      type: 'string',
      minLength: 1,
      description: 'Path of a JSON file holding the connector (like nova-manage); refresh only.',
    },
    connectors: {
      type: 'object',
      additionalProperties: { anyOf: [{ type: 'object' }, { type: 'string' }] },
      description:
        'fleet refresh: the connector of each compute host, keyed by Nova host name (an object, or the JSON text get_connector --json printed).',
    },
    connector_attempts: {
      type: 'array',
      items: {
        type: 'object',
        required: ['item', 'source'],
        properties: {
          item: { type: 'string', minLength: 1 },
          source: { type: 'string', enum: ['module', 'nova-manage', 'command'] },
          connector: { type: 'object' },
          rc: { type: 'integer' },
          cmd: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
          stdout: { type: 'string' },
          stdout_lines: { type: 'array', items: { type: 'string' } },
          stderr_lines: { type: 'array', items: { type: 'string' } },
          module_stderr: { type: 'string' },
        },
      },
      description:
        "fleet refresh, from the role: the registered results of its get_connector tasks on the compute hosts (item = the Nova host, source = module, nova-manage or command); a host's connector is the first that came back, and each host with none gets one line in connector_errors.",
    },
    connector_dir: {
      type: 'string',
      minLength: 1,
      description: 'fleet refresh: a folder of <host>.json connector files (as get_connector --json writes them).',
    },
    max_parallel: {
      type: 'integer',
      minimum: 1,
      maximum: 256,
      default: 8,
      description: 'fleet refresh: instances refreshed at once.',
    },
    per_host_parallel: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      default: 2,
      description: 'fleet refresh: instances refreshed at once on one compute host.',
    },
    max_failures: {
      type: 'integer',
      minimum: 1,
      description: 'fleet refresh: stop starting new work after this many failed BDMs (default unlimited).',
    },
    refuse_locked: {
      type: 'boolean',
      default: false,
      description:
        'refresh and audit: treat an instance locked by someone else as not refreshable (the rule before nova-manage 27.5.1/28.3.0/29.0.0).',
    },
    running_instances: {
      type: 'string',
      enum: ['skip', 'online'],
      default: 'skip',
      description:
        "refresh and audit: what to do with running instances (vm_state active or paused, power_state running or paused, no task). skip: leave them (nova-manage's rule). online: refresh their rbd BDMs that QEMU serves itself (no local attach, no encryption) by Cinder and the database alone, the guest untouched and no RPC; their other BDMs are skipped with what the host holds.",
    },
    force: {
      type: 'boolean',
      default: false,
      description: 'Refresh even when the BDM is not stale.',
    },
    expect: {
      type: 'object',
      description:
        'Partial connection_info the BDM must match, e.g. {driver_volume_type: rbd, data: {hosts: [...], ports: [...]}}; lists compare as sets, Ceph hosts paired with ports.',
    },
    require_libvirt: {
      type: 'boolean',
      default: true,
      description: 'Refuse to refresh on computes whose hypervisor is not libvirt QEMU/KVM. Setting it false is at your own risk.',
    },
    rpc_timeout: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 3600,
      description: 'Seconds to wait for the compute to answer remove_volume_connection; default [DEFAULT] rpc_response_timeout (60).',
    },
    cinder_auth: {
      type: 'object',
      additionalProperties: false,
      properties: {
        auth_type: { type: 'string' },
        auth_url: { type: 'string' },
        username: { type: 'string' },
        user_id: { type: 'string' },
        password: { type: 'string' },
        user_domain_name: { type: 'string' },
        user_domain_id: { type: 'string' },
        project_name: { type: 'string' },
        project_id: { type: 'string' },
        project_domain_name: { type: 'string' },
        project_domain_id: { type: 'string' },
        system_scope: { type: 'string' },
        application_credential_id: { type: 'string' },
        application_credential_name: { type: 'string' },
        application_credential_secret: { type: 'string' },
        region_name: { type: 'string' },
        catalog_info: { type: 'string' },
        endpoint_template: { type: 'string' },
        cafile: { type: 'string' },
        insecure: { type: 'boolean' },
        timeout: { type: 'number', exclusiveMinimum: 0 },
      },
      description: 'Keystone credentials and Cinder endpoint options that override [cinder] (same names as in nova.conf).',
      secret: true,
    },
    host_root: {
      type: 'string',
      minLength: 1,
      default: '/',
      description: 'get_connector: the root of the host file system to read (tests point it at a fake tree).',
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
