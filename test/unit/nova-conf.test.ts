import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNovaConf } from '../../src/config/nova-conf';
import { resolveDatabaseSettings } from '../../src/config/connections';
import { naiveUtcToDate, naiveUtcToIso } from '../../src/naive-utc';

test('later files override earlier ones; comments and continuation lines follow oslo.config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbt-conf-'));
  writeFileSync(
    join(dir, 'a.conf'),
    '[DEFAULT]\nhost = a\n# comment\n[api_database]\nconnection = mysql://a@h/api\n[database]\nconnection=mysql://a@h/cell # not a comment\n',
  );
  writeFileSync(join(dir, 'b.conf'), '[default]\nhost = b\nmy-ip = 10.0.0.1\n[cinder]\ncatalog_info = volumev3::publicURL\n  continued\n');
  const conf = loadNovaConf([join(dir, 'a.conf'), join(dir, 'missing.conf'), join(dir, 'b.conf')]);
  assert.equal(conf.get('DEFAULT', 'host'), 'b');
  assert.equal(conf.get('DEFAULT', 'my_ip'), '10.0.0.1');
  assert.equal(conf.get('database', 'connection'), 'mysql://a@h/cell # not a comment');
  assert.equal(conf.get('cinder', 'catalog_info'), 'volumev3::publicURL\ncontinued');
  assert.match(conf.describeFiles(), /missing\.conf \(not found\)/);
});

test('a missing option names itself and where it was looked up', () => {
  const conf = loadNovaConf(['/nonexistent/nova.conf']);
  assert.throws(
    () => resolveDatabaseSettings(conf, {}),
    /^BadInput: \[api_database\] connection is not set \(looked in \/nonexistent\/nova.conf \(not found\)\): give api_database_connection/,
  );
  assert.equal(resolveDatabaseSettings(conf, { api_database_connection: 'mysql://x@h/api' }).apiConnection, 'mysql://x@h/api');
});

test('typed getters read booleans and numbers as oslo.config does, and refuse what oslo refuses', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbt-conf-'));
  writeFileSync(
    join(dir, 'n.conf'),
    '[libvirt]\nvolume_use_multipath = Yes\n[a]\nt = T\nn = off\nbad = maybe\nnum = 2.5\nint = 7\nnotnum = 5s\nempty =\n',
  );
  const conf = loadNovaConf([join(dir, 'n.conf')]);
  assert.equal(conf.getBool('libvirt', 'volume_use_multipath', false), true);
  assert.equal(conf.getBool('a', 't', false), true);
  assert.equal(conf.getBool('a', 'n', true), false);
  assert.equal(conf.getBool('a', 'missing', true), true);
  assert.equal(conf.getBool('a', 'empty', true), true);
  assert.throws(() => conf.getBool('a', 'bad', false), /^BadInput: \[a\] bad = maybe is not a boolean/);
  assert.equal(conf.getNumber('a', 'num', 0), 2.5);
  assert.equal(conf.getNumber('a', 'int', 0), 7);
  assert.equal(conf.getNumber('a', 'missing', 60), 60);
  assert.throws(() => conf.getNumber('a', 'notnum', 0), /^BadInput: \[a\] notnum = 5s is not a number/);
});

test('naive UTC times from the DB become ISO-8601 UTC, with or without a fraction', () => {
  assert.equal(naiveUtcToIso('2026-12-01 15:04:05'), '2026-12-01T15:04:05Z');
  assert.equal(naiveUtcToIso('2026-12-01 15:04:05.123456'), '2026-12-01T15:04:05Z');
  assert.equal(naiveUtcToIso(null), null);
  assert.equal(naiveUtcToDate('2026-12-01 15:04:05').toISOString(), '2026-12-01T15:04:05.000Z');
});
