import fc from 'fast-check';
import { argsSchema } from '../../../src/args/schema';
import { FLEET_FILTERS } from '../../../src/args/selection';
import { CONNECTOR } from '../../support/refresh-env';
import type { FuzzSandbox } from './sandbox';

// Generators of hostile input for the three ways in. Each leans towards "almost valid" (the
// right keys, one thing wrong) so the inputs reach past the schema into the code behind it.

const OPTIONS = Object.keys(argsSchema.properties);

/** Strings of every kind: unicode, NUL and control bytes, huge, path-like, number-like. */
export const hostileString = fc.oneof(
  { weight: 4, arbitrary: fc.string() },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '\0',
      '\n',
      'null',
      'true',
      '0',
      '-1',
      '1e309',
      'NaN',
      '__proto__',
      'constructor',
      '../..',
      '%00',
      '\u202e',
      '\ud800',
      'DROP TABLE instances; --',
      "' OR 1=1 --",
      '${jndi:x}',
      '{{ lookup("env","HOME") }}',
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3_000_000 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 200_000 }).map((n) => '\u00e9\u0000\ud83d\ude00'.repeat(n)) },
);

export function deepObject(depth: number, leaf: unknown = 1, key = 'd'): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = { [key]: v };
  return v;
}

function deepArray(depth: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** Any JSON-ish value, including the pathological shapes. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 2, arbitrary: hostileString },
  {
    weight: 1,
    arbitrary: fc.constantFrom(null, true, false, 0, -0, 1.5, -1, 2 ** 53, Number.MAX_VALUE, 1e-300, [], {}, [null], { __proto__: null }),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((d) => deepObject(d)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((d) => deepArray(d)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 300_000 }).map((n) => Array(n).fill('h')) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 5_000 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))),
  },
  {
    weight: 1,
    arbitrary: fc.constant(JSON.parse('{"__proto__": {"action": "refresh", "polluted": true}, "constructor": {"prototype": {"x": 1}}}')),
  },
);

const validUuid = fc.uuid().map((u) => u);
const badUuid = fc.oneof(
  hostileString,
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid().map((u) => u.replace(/-/g, '')),
  fc.uuid().map((u) => `${u}\n`),
  fc.uuid().map((u) => ` ${u}`),
  fc.uuid().map((u) => `${u}\0`),
  fc.uuid().map((u) => u.replace(/[0-9]/g, '\u0661')), // Arabic-Indic digits
  fc.uuid().map((u) => `${u.slice(0, -1)}g`),
);

export function arbitraries(s: FuzzSandbox) {
  const bdm = fc.constantFrom(...s.bdms);
  const pathTrick = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...Object.values(s.paths)) }, { weight: 1, arbitrary: hostileString });
  const reportTrick = fc.oneof(
    { weight: 2, arbitrary: fc.constant(null).map(() => s.reportTarget()) },
    { weight: 5, arbitrary: fc.constantFrom(...Object.values(s.writePaths)) },
    // relative, so inside the working directory; no way up and out of it
    { weight: 1, arbitrary: hostileString.map((x) => x.replace(/\.\./g, '__').replace(/^\/+/, '')) },
  );
  const confPath = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...Object.values(s.confs)) }, { weight: 2, arbitrary: pathTrick });
  const configFile = fc.oneof(
    { weight: 6, arbitrary: fc.constant(s.confs.good!) },
    { weight: 4, arbitrary: confPath },
    { weight: 2, arbitrary: fc.array(confPath, { minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.array(confPath, { minLength: 0, maxLength: 2000 }) },
    { weight: 1, arbitrary: hostileValue },
  );
  const uuid = fc.oneof({ weight: 3, arbitrary: validUuid }, { weight: 3, arbitrary: badUuid }, { weight: 2, arbitrary: hostileValue });
  const dbUrl = fc.oneof(
    fc.constantFrom(
      `mysql+pymysql://u:${encodeURIComponent(s.secret('arg-db-pw'))}@127.0.0.1:1/nova_api`,
      `mysql+pymysql://${s.fx.env.dbUser}:${encodeURIComponent(s.secret('arg-db-pw2'))}@127.0.0.1:3306/${s.fx.env.databases.api}`,
      `mysql://:${s.secret('arg-db-pw3')}@/`,
      `mysql+pymysql://u:p@[::1:3306/x`,
      s.fx.env.apiUrl,
      `${s.fx.env.apiUrl}&ssl_ca=${s.paths.fifo}`,
      'sqlite:///:memory:',
      'mysql+pymysql://u@127.0.0.1:3306/nbh_does_not_exist',
    ),
    hostileString,
  );
  const secretString = fc.constantFrom(s.secret('arg-keystone-pw'), s.secret('arg-appcred'), 'p%40ss');
  const cinderAuth = fc.oneof(
    fc.record(
      {
        auth_type: fc.constantFrom('password', 'v3applicationcredential', 'token', 'none', ''),
        auth_url: fc.constantFrom(
          `${s.cloud.url}/identity`,
          'http://127.0.0.1:1/identity',
          'not a url',
          'file:///etc/passwd',
          `${s.cloud.url}/identity/../../x`,
        ),
        username: fc.constantFrom('nova', 'nobody', ''),
        password: secretString,
        application_credential_secret: secretString,
        project_name: fc.constantFrom('service', ''),
        user_domain_name: fc.constant('Default'),
        project_domain_name: fc.constant('Default'),
        timeout: fc.oneof(fc.constantFrom(0.5, 1, 2), hostileValue),
        insecure: fc.oneof(fc.boolean(), hostileValue),
        cafile: pathTrick,
        extra_key: hostileValue,
      },
      { requiredKeys: ['auth_type', 'auth_url', 'password'] },
    ),
    hostileValue,
  );
  const connector = fc.oneof(
    fc.constant({ ...CONNECTOR, host: s.host }),
    fc.record(
      {
        host: hostileValue,
        initiator: hostileValue,
        ip: hostileValue,
        multipath: hostileValue,
        platform: hostileValue,
        os_type: hostileValue,
        extra: hostileValue,
      },
      { requiredKeys: [] },
    ),
    fc.constant(JSON.parse(`{"__proto__": {"host": "x"}, "host": "${s.host}", "ip": "192.0.2.1"}`)),
    hostileValue,
  );
  const expect = fc.oneof(
    fc.constant({ driver_volume_type: 'rbd', data: { hosts: ['198.51.100.21'], ports: ['6789'] } }),
    fc.record({ driver_volume_type: hostileValue, data: hostileValue }, { requiredKeys: [] }),
    fc.constant({ data: 'x' }),
    fc.constant({ data: { keyring: 'x' } }),
    fc.constant({ driver_volume_type: ['rbd'] }),
    fc.constant(JSON.parse('{"data": {"__proto__": {"hosts": ["x"]}, "hosts": [], "ports": []}}')),
    hostileValue,
  );
  /** A value for the option, most often of the right type, sometimes anything. */
  const valueFor = (option: string): fc.Arbitrary<unknown> => {
    const typed: Record<string, fc.Arbitrary<unknown>> = {
      action: fc.constantFrom('show', 'refresh', 'audit', 'get_connector'),
      bdm_uuid: fc.oneof({ weight: 4, arbitrary: bdm.map((b) => b.uuid) }, { weight: 2, arbitrary: uuid }),
      instance_uuid: fc.oneof({ weight: 4, arbitrary: bdm.map((b) => b.instanceUuid) }, { weight: 2, arbitrary: uuid }),
      volume_id: fc.oneof({ weight: 4, arbitrary: bdm.map((b) => b.volumeId) }, { weight: 2, arbitrary: uuid }),
      hosts: fc.oneof(
        fc.constant([s.host]),
        fc.array(hostileString, { maxLength: 5 }),
        fc.integer({ min: 1, max: 100_000 }).map((n) => Array(n).fill(s.host)),
      ),
      instance_uuids: fc.oneof(fc.constant(s.instances.slice(0, 2)), fc.array(uuid, { maxLength: 5 })),
      volume_ids: fc.array(
        fc.oneof(
          bdm.map((b) => b.volumeId),
          uuid,
        ),
        { maxLength: 5 },
      ),
      project_id: fc.oneof(fc.constant('demo-project'), hostileString),
      driver_volume_type: fc.oneof(fc.constantFrom('rbd', 'iscsi', 'RBD'), hostileString),
      check_cinder: fc.boolean(),
      cinder_concurrency: fc.oneof(fc.integer({ min: -2, max: 70 }), fc.double()),
      report_path: reportTrick,
      metrics_path: reportTrick,
      stale_limit: fc.oneof(fc.integer({ min: -2, max: 3 }), fc.integer({ min: 0, max: 100_000 }), fc.double(), hostileValue),
      config_file: configFile,
      api_database_connection: dbUrl,
      database_connection: dbUrl,
      reveal_secrets: fc.boolean(),
      connector,
      connector_path: pathTrick,
      connector_dir: pathTrick,
      force: fc.boolean(),
      expect,
      require_libvirt: fc.boolean(),
      rpc_timeout: fc.oneof(fc.constantFrom(0.5, 1), fc.double(), hostileValue),
      cinder_auth: cinderAuth,
      host_root: fc.oneof(fc.constantFrom(s.root, s.paths.dir!, s.paths.fifo!, s.paths.linkToDir!, '/nonexistent'), hostileString),
      connect_timeout: fc.oneof(fc.constantFrom(0.5, 1, 2), fc.double(), hostileValue),
    };
    const right = typed[option] ?? hostileValue;
    return fc.oneof({ weight: 6, arbitrary: right }, { weight: 1, arbitrary: hostileValue });
  };
  const extraKeys = fc.dictionary(
    fc.oneof(
      hostileString,
      fc.constantFrom(
        '__proto__',
        'constructor',
        'prototype',
        'toString',
        'hasOwnProperty',
        '_ansible_module_name',
        '_ansible_no_log',
        'ACTION',
        'bdm-uuid',
        'connector_dir',
        'max_parallel',
      ),
    ),
    hostileValue,
    { maxKeys: 3 },
  );
  const ansibleFlags = fc.record(
    {
      _ansible_check_mode: fc.oneof({ weight: 5, arbitrary: fc.boolean() }, { weight: 1, arbitrary: hostileValue }),
      _ansible_diff: fc.oneof({ weight: 5, arbitrary: fc.boolean() }, { weight: 1, arbitrary: hostileValue }),
      _ansible_verbosity: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: hostileValue }),
      _ansible_no_log: fc.boolean(),
    },
    { requiredKeys: [] },
  );
  /** Module arguments: an action, a subset of the options, maybe extra keys, Ansible's flags. */
  const moduleArgs = fc
    .tuple(
      fc.oneof({ weight: 8, arbitrary: valueFor('action') }, { weight: 1, arbitrary: fc.constant(undefined) }),
      fc.uniqueArray(fc.constantFrom(...OPTIONS.filter((o) => o !== 'action')), { maxLength: 6 }),
      fc.oneof({ weight: 6, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: extraKeys }),
      ansibleFlags,
      fc.boolean(),
    )
    .chain(([action, keys, extra, flags, withGoodConf]) =>
      fc.tuple(...keys.map((k) => valueFor(k))).map((values) => {
        const args: Record<string, unknown> = {};
        if (action !== undefined) args.action = action;
        // Most inputs read the good nova.conf, so they get past it to the databases.
        if (withGoodConf) args.config_file = s.confs.good;
        keys.forEach((k, i) => (args[k] = values[i]));
        for (const [k, v] of Object.entries(extra))
          Object.defineProperty(args, k, { value: v, enumerable: true, writable: true, configurable: true });
        return confineFleetRefresh(s, { ...args, ...flags });
      }),
    );

  /** The text of an args file (or stdin): JSON of module args, or broken JSON. */
  const argsText = fc.oneof(
    { weight: 8, arbitrary: moduleArgs.map((a) => safeStringify(a)) },
    {
      weight: 1,
      arbitrary: moduleArgs.map((a) => safeStringify(a)).chain((t) => fc.integer({ min: 0, max: t.length }).map((n) => t.slice(0, n))),
    },
    { weight: 1, arbitrary: hostileString },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{"action": "show", "action": "audit", "config_file": "/nonexistent"}',
        `{"__proto__": {"action": "refresh"}, "bdm_uuid": "0b9f6d2e-5c43-4e1a-9a7d-3f2c1b0a9e8d"}`,
        `\ufeff{"action": "show"}`,
        '[]',
        'null',
        '"show"',
        '1e999',
        '{"action": "show"} trailing',
        `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
        `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`,
      ),
    },
  );

  const word = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        'bdm',
        'show',
        'refresh',
        'audit',
        'volume_attachment',
        'get_connector',
        '-',
        '--',
        '-h',
        '--json',
        '--connection_info',
        '--reveal-secrets',
        '--force',
        '--check',
        '--check-cinder',
        '--no-require-libvirt',
      ),
    },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        '--config-file',
        '--connector-path',
        '--rpc-timeout',
        '--expect-json',
        '--host',
        '--project',
        '--driver-volume-type',
        '--connect-timeout',
        '--config_file',
        '--connector_path',
        '--cell',
        '--instance',
        '--volume',
        '--bdm',
        '--connector-dir',
        '--max-parallel',
        '--per-host-parallel',
        '--max-failures',
        '--refuse-locked',
      ),
    },
    {
      weight: 3,
      arbitrary: fc.oneof(
        bdm.map((b) => b.uuid),
        bdm.map((b) => b.instanceUuid),
        bdm.map((b) => b.volumeId),
        validUuid,
        badUuid,
      ),
    },
    { weight: 2, arbitrary: confPath },
    { weight: 2, arbitrary: pathTrick },
    {
      weight: 1,
      arbitrary: fc.constantFrom('{"data": {"hosts": ["10.0.0.1"]}}', '{', '[]', 'null', '1e999', '-1', 'NaN', 'Infinity', '0x10'),
    },
    { weight: 1, arbitrary: hostileString },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('--config-file=', '--rpc-timeout=', '--expect-json=', '--host='), hostileString)
        .map(([a, b]) => a + b),
    },
    { weight: 1, arbitrary: reportTrick.map((p) => `--report-path=${p}`) },
    { weight: 1, arbitrary: reportTrick.map((p) => `--metrics-file=${p}`) },
    { weight: 1, arbitrary: fc.constantFrom('--stale-limit=0', '--stale-limit=1', '--stale-limit=-1', '--stale-limit=x') },
  );
  const command = fc.constantFrom(
    ['bdm', 'show'],
    ['bdm', 'refresh'],
    ['bdm', 'audit'],
    ['volume_attachment', 'show'],
    ['volume_attachment', 'refresh'],
    ['get_connector'],
    [],
  );
  const argv = fc.tuple(command, fc.array(word, { maxLength: 8 }), fc.boolean()).map(([cmd, words, withGoodConf]) => {
    const argv = [...(withGoodConf ? ['--config-file', s.confs.good!] : []), ...cmd, ...words];
    // as confineFleetRefresh: a real fleet refresh only ever selects the sandbox's host
    return argv.includes('refresh') && !argv.includes('--check') ? [...argv, '--host', s.host] : argv;
  });

  return { moduleArgs, argsText, argv };
}

/**
 * A fleet refresh (refresh + filters) for real would refresh whatever the filters select in the
 * shared test DBs, other tests' instances included: confined to the sandbox's hosts unless in
 * check mode (which writes nothing anywhere, and the fuzz checks that too).
 */
export function confineFleetRefresh(s: FuzzSandbox, args: Record<string, unknown>): Record<string, unknown> {
  if (
    args.action !== 'refresh' ||
    args._ansible_check_mode === true ||
    !FLEET_FILTERS.some((f: string) => args[f] !== undefined && args[f] !== null)
  )
    return args;
  return { ...args, hosts: [s.host, s.heavyHost] };
}

/** JSON.stringify, but a value it cannot write (too deep) becomes a plain hostile string. */
export function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return '"unstringifiable"';
  }
}
