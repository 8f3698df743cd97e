import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { execute } from '../src/entry/run';
import { answer, resultOf } from './support/results';

// get_connector reads the host's files like os-brick; here a fake host tree stands in for /.

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'nbt-host-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

test('every source present: initiator, FC WWNs, NQN, root fs UUID, system UUID, multipath with multipathd', async () => {
  const root = tree({
    'etc/iscsi/initiatorname.iscsi': '## DO NOT EDIT\nInitiatorName=iqn.2004-10.com.ubuntu:01:abc123\n',
    'sys/class/fc_host/host1/port_name': '0x21000024ff313d3a\n',
    'sys/class/fc_host/host1/node_name': '0x20000024ff313d3a\n',
    'sys/class/fc_host/host2/port_name': '0x21000024ff313d3b\n',
    'sys/class/fc_host/host2/node_name': '0x20000024ff313d3b\n',
    'etc/nvme/hostnqn': 'nqn.2014-08.org.nvmexpress:uuid:0f8e3a7c-1111-2222-3333-444455556666\n',
    'sys/class/dmi/id/product_uuid': '4C4C4544-0042-3010-8051-B4C04F333132\n',
    'sys/module/nvme_core/parameters/multipath': 'Y\n',
    'proc/mounts': 'sysfs /sys sysfs rw 0 0\n/dev/vda1 / ext4 rw,relatime 0 0\n',
    'dev/vda1': '',
    'proc/4242/comm': 'multipathd\n',
  });
  mkdirSync(join(root, 'dev/disk/by-uuid'), { recursive: true });
  symlinkSync('../../vda1', join(root, 'dev/disk/by-uuid/1b2c3d4e-aaaa-bbbb-cccc-0123456789ab'));
  const conf = join(root, 'nova.conf');
  writeFileSync(
    conf,
    '[DEFAULT]\nhost = compute7\nmy_ip = 192.0.2.7\nmy_block_storage_ip = 198.51.100.7\n[libvirt]\nvolume_use_multipath = true\n',
  );
  const result = resultOf(await execute({ action: 'get_connector', config_file: conf, host_root: root }), 'get_connector');
  assert.equal(result.changed, false);
  const c = result.connector;
  assert.deepEqual(Object.keys(c).sort(), [
    'do_local_attach',
    'found_dsc',
    'host',
    'initiator',
    'ip',
    'multipath',
    'nqn',
    'nvme_native_multipath',
    'os_type',
    'platform',
    'system uuid',
    'uuid',
    'wwnns',
    'wwpns',
  ]);
  assert.equal(c.found_dsc, '', 'no LightOS discovery client answers here');
  assert.equal(c.host, 'compute7');
  assert.equal(c.ip, '198.51.100.7', 'my_block_storage_ip wins over my_ip');
  assert.equal(c.initiator, 'iqn.2004-10.com.ubuntu:01:abc123');
  assert.deepEqual(c.wwpns, ['21000024ff313d3a', '21000024ff313d3b']);
  assert.deepEqual(c.wwnns, ['20000024ff313d3a', '20000024ff313d3b']);
  assert.equal(c.nqn, 'nqn.2014-08.org.nvmexpress:uuid:0f8e3a7c-1111-2222-3333-444455556666');
  assert.equal(c.uuid, '1b2c3d4e-aaaa-bbbb-cccc-0123456789ab');
  assert.equal(c['system uuid'], '4c4c4544-0042-3010-8051-b4c04f333132');
  assert.equal(c.multipath, true);
  assert.equal(c.nvme_native_multipath, true);
  assert.equal(c.do_local_attach, false);
  assert.equal(c.os_type, 'linux');
});

test('missing sources are left out, not guessed; multipath wanted without multipathd is an error', async () => {
  const root = tree({});
  const conf = join(root, 'nova.conf');
  writeFileSync(conf, '[DEFAULT]\nhost = compute8\nmy_ip = 192.0.2.8\n');
  const result = resultOf(await execute({ action: 'get_connector', config_file: conf, host_root: root }), 'get_connector');
  // nvme_native_multipath is always there (false without nvme_core), as os-brick 6.1 reports it.
  assert.deepEqual(result.connector, {
    platform: result.connector.platform,
    os_type: 'linux',
    ip: '192.0.2.8',
    host: 'compute8',
    multipath: false,
    nvme_native_multipath: false,
    do_local_attach: false,
  });
  writeFileSync(conf, '[DEFAULT]\nhost = compute8\n[libvirt]\nvolume_use_multipath = True\n');
  const failed = answer(await execute({ action: 'get_connector', config_file: conf, host_root: root }));
  assert.equal(failed.failed, true);
  assert.equal(failed.msg, '[libvirt] volume_use_multipath is true but multipathd is not running on this host');
  const bad = answer(await execute({ action: 'get_connector', config_file: conf, bdm_uuid: '5b7e1c0a-3f2d-4e8b-9a6c-1d2e3f4a5b6c' }));
  assert.match(String(bad.msg), /bdm_uuid does not apply to action get_connector/);
});

test('an absolute /dev/disk/by-uuid link resolves inside the host tree', async () => {
  const root = tree({ 'proc/mounts': '/dev/sda2 / xfs rw 0 0\n', 'dev/sda2': '', 'dev/sda1': '' });
  mkdirSync(join(root, 'dev/disk/by-uuid'), { recursive: true });
  symlinkSync('/dev/sda1', join(root, 'dev/disk/by-uuid/11111111-0000-0000-0000-000000000001'));
  symlinkSync('/dev/sda2', join(root, 'dev/disk/by-uuid/22222222-0000-0000-0000-000000000002'));
  const conf = join(root, 'nova.conf');
  writeFileSync(conf, '[DEFAULT]\nhost = compute9\nmy_ip = 192.0.2.9\n');
  const result = resultOf(await execute({ action: 'get_connector', config_file: conf, host_root: root }), 'get_connector');
  assert.equal(result.connector.uuid, '22222222-0000-0000-0000-000000000002');
});

test('found_dsc: "found" while a LightOS discovery client answers on localhost:6060, as os-brick asks it', async () => {
  const root = tree({ 'etc/nvme/hostnqn': 'nqn.2014-08.org.nvmexpress:uuid:0f8e3a7c-1111-2222-3333-444455556667\n' });
  const conf = join(root, 'nova.conf');
  writeFileSync(conf, '[DEFAULT]\nhost = compute10\nmy_ip = 192.0.2.10\n');
  const heads: string[] = [];
  const server = createServer((req, res) => {
    heads.push(`${req.method} ${req.url}`);
    res.statusCode = req.method === 'HEAD' && req.url === '/metrics' ? 200 : 404;
    res.end();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(6060, 'localhost', resolve));
  try {
    const result = resultOf(await execute({ action: 'get_connector', config_file: conf, host_root: root }), 'get_connector');
    assert.equal(result.connector.found_dsc, 'found');
    // Other tests running beside this one ask too, on a host with an NQN (/etc/nvme/hostnqn,
    // which Debian's nvme-cli creates): every request is the one os-brick makes.
    assert.ok(heads.length >= 1, 'asked');
    assert.deepEqual([...new Set(heads)], ['HEAD /metrics']);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  // Without an NQN there is no found_dsc at all (os-brick adds it next to the NQN only).
  const bare = tree({});
  writeFileSync(join(bare, 'nova.conf'), '[DEFAULT]\nhost = compute10\nmy_ip = 192.0.2.10\n');
  const result = resultOf(
    await execute({ action: 'get_connector', config_file: join(bare, 'nova.conf'), host_root: bare }),
    'get_connector',
  );
  assert.ok(!('found_dsc' in result.connector));
});
