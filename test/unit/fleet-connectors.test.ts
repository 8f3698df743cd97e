import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectorLookup } from '../../src/entry/connectors';
import { parseModuleInput } from '../../src/args/validate';
import { NovaBdmError } from '../../src/errors';

// `connectors` as the role fills it from a compute host without Node.js: the text
// `nova-manage volume_attachment get_connector --json` printed there, checked on the controller.

const CONNECTOR = {
  platform: 'x86_64',
  os_type: 'linux',
  ip: '192.0.2.11',
  host: 'compute-a',
  multipath: false,
  do_local_attach: false,
  initiator: 'iqn.1993-08.org.debian:01:a',
};

function failureOf(found: unknown): string {
  assert.ok(found instanceof NovaBdmError, `an error, not ${JSON.stringify(found)}`);
  assert.ok(!found.message.includes('\n'), `one line: ${found.message}`);
  return found.message;
}

test('a host connector given as get_connector --json text is parsed and used', () => {
  const lookup = connectorLookup({
    connectors: { 'compute-a': `${JSON.stringify(CONNECTOR)}\n`, 'compute-b': { ...CONNECTOR, host: 'compute-b' } },
  });
  assert.deepEqual(lookup('compute-a'), CONNECTOR);
  assert.equal((lookup('compute-b') as { host: string }).host, 'compute-b');
});

test('text that is not a valid connector fails the BDMs of its host only, in one line naming the host', () => {
  const lookup = connectorLookup({
    connectors: {
      'compute-a': JSON.stringify(CONNECTOR),
      'compute-b': 'Unexpected error: Unable to find the volume_use_multipath option\nin the config',
      'compute-c': JSON.stringify({ host: 'compute-c', ip: '192.0.2.13' }),
      'compute-d': '',
      'compute-e': JSON.stringify({ ...CONNECTOR, host: 'compute-e', multipath: 'yes' }),
    },
  });
  assert.equal((lookup('compute-a') as { host: string }).host, 'compute-a');
  assert.equal(
    failureOf(lookup('compute-b')),
    'the connector for compute host compute-b cannot be used: the get_connector output is not JSON ("Unexpected error: Unable to find the volume_use_multipath option in the config"); it must be what get_connector --json prints',
  );
  assert.equal(
    failureOf(lookup('compute-c')),
    'the connector for compute host compute-c cannot be used: connector is not a valid host connector (missing platform, os_type, multipath); create it on the compute with get_connector',
  );
  assert.match(
    failureOf(lookup('compute-d')),
    /^the connector for compute host compute-d cannot be used: the get_connector output is not JSON \(empty\)/,
  );
  assert.match(
    failureOf(lookup('compute-e')),
    /^the connector for compute host compute-e cannot be used: connector is not a valid host connector \(.*multipath.*boolean.*\)/,
  );
});

test('the module takes connectors as objects or strings, and refuses other values in one line', () => {
  const base = { action: 'refresh', hosts: ['compute-a'] };
  assert.deepEqual(parseModuleInput({ ...base, connectors: { 'compute-a': '{}', 'compute-b': {} } }).args.connectors, {
    'compute-a': '{}',
    'compute-b': {},
  });
  assert.throws(
    () => parseModuleInput({ ...base, connectors: { 'compute-a': 42 } }),
    (err: Error) => {
      assert.equal(err.name, 'BadInput');
      assert.equal(err.message, 'connectors must map each host to its connector: a dict, or the JSON text get_connector --json printed');
      assert.ok(!err.message.includes('\n'));
      return true;
    },
  );
});
