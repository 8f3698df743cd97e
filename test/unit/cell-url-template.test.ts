import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatCellUrl } from '../../src/config/cell-url-template';

const conf = 'mysql+pymysql://nova:p%40ss@DB.Example.org:3306/nova?charset=utf8';

test('fills a template from the local URL like nova (password stays percent-encoded, host lower-cased)', () => {
  assert.equal(
    formatCellUrl('{scheme}://{username}:{password}@{hostname}:{port}/nova_cell1?{query}', conf),
    'mysql+pymysql://nova:p%40ss@db.example.org:3306/nova_cell1?charset=utf8',
  );
});

test('a missing port is the text None, as Python formats it', () => {
  assert.equal(formatCellUrl('{hostname}:{port}', 'rabbit://u:p@mq/'), 'mq:None');
});

test('multi-host transport URLs give indexed fields', () => {
  const url = 'rabbit://u1:p1@h1:5672,u2:p2@h2:5673/vh';
  assert.equal(
    formatCellUrl('rabbit://{username1}:{password1}@{hostname1}:{port1},{hostname2}:{port2}/{path}', url),
    'rabbit://u1:p1@h1:5672,h2:5673/vh',
  );
});

test('no template, no local URL, or an unknown field: the stored value unchanged', () => {
  assert.equal(formatCellUrl('mysql://a:b@h/db', conf), 'mysql://a:b@h/db');
  assert.equal(formatCellUrl('{scheme}://x', undefined), '{scheme}://x');
  assert.equal(formatCellUrl('{nope}://x', conf), '{nope}://x');
  assert.equal(formatCellUrl('{{literal}}{path}', conf), '{literal}nova');
});
