import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNovaConf } from '../../src/config/nova-conf';
import { resolveDatabaseSettings } from '../../src/config/connections';

test('later files override earlier ones; comments and continuation lines follow oslo.config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbt-conf-'));
  writeFileSync(join(dir, 'a.conf'), '[DEFAULT]\nhost = a\n# comment\n[api_database]\nconnection = mysql://a@h/api\n[database]\nconnection=mysql://a@h/cell # not a comment\n');
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
