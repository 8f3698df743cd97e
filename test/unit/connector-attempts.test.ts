import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectorErrorLine, readConnectorAttempts } from '../../src/entry/connector-attempts';

// The registered results of the role's get_connector tasks, as Ansible hands them over.
const nm = 'nova-manage --config-file=/etc/nova/nova.conf volume_attachment get_connector --json';

test('the first source that gave a connector wins; a host where none did gets every reason, in order', () => {
  const connector = { host: 'cmp-1', platform: 'x86_64' };
  const got = readConnectorAttempts([
    { item: 'cmp-1', source: 'nova-manage', rc: 0, cmd: nm, stdout: '{"host": "cmp-1"}', stdout_lines: ['{"host": "cmp-1"}'] },
    {
      item: 'cmp-2',
      source: 'nova-manage',
      rc: 2,
      cmd: nm.split(' '),
      stdout_lines: [],
      stderr_lines: ['', '[Errno 2] No such file or directory', ''],
    },
    { item: 'cmp-3', source: 'command', unreachable: true, msg: 'Failed to connect to the host via ssh' },
    {
      item: 'cmp-2',
      source: 'module',
      msg: 'MODULE FAILURE\nSee stdout/stderr',
      module_stderr: '/bin/sh: 1: /nonexistent/node: not found\n',
    },
    { item: 'cmp-3', source: 'module', connector },
  ]);
  assert.deepEqual(got.connectors, { 'cmp-1': '{"host": "cmp-1"}', 'cmp-3': connector });
  assert.deepEqual(got.errors, {
    'cmp-2': `nova-manage: \`${nm}\` failed (rc 2): [Errno 2] No such file or directory; then module: MODULE FAILURE See stdout/stderr (/bin/sh: 1: /nonexistent/node: not found)`,
  });
  assert.equal(connectorErrorLine('cmp-2', 'why'), 'get_connector failed on cmp-2: why');
});

test('nova-manage prints its errors on stdout: the last line that says something; nothing said: the task msg', () => {
  const got = readConnectorAttempts([
    {
      item: 'a',
      source: 'nova-manage',
      rc: 1,
      cmd: nm,
      stdout_lines: ['Traceback ...', 'nova.exception.Invalid: bad', ''],
      stderr_lines: ['noise'],
    },
    { item: 'b', source: 'command', msg: 'it was skipped' },
    { item: 'c', source: 'module' },
  ]);
  assert.deepEqual(got.errors, {
    a: `nova-manage: \`${nm}\` failed (rc 1): nova.exception.Invalid: bad`,
    b: 'command: did not run: it was skipped',
    c: 'module: no connector returned',
  });
  assert.deepEqual(got.connectors, {});
});
