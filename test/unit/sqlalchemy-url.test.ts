import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeDbTarget, parseSqlalchemyUrl } from '../../src/config/sqlalchemy-url';

test('percent-encoded credentials are decoded, port and database read', () => {
  const t = parseSqlalchemyUrl('mysql+pymysql://nova:p%40ss%2Fw%3Ard@db.example.org:3307/nova?charset=utf8', 'x');
  assert.deepEqual(t, { user: 'nova', password: 'p@ss/w:rd', host: 'db.example.org', port: 3307, database: 'nova', charset: 'utf8' });
});

test('defaults: port 3306, localhost when no host and no socket', () => {
  const t = parseSqlalchemyUrl('mysql://nova@/nova', 'x');
  assert.equal(t.port, 3306);
  assert.equal(t.host, 'localhost');
  assert.equal(t.password, undefined);
});

test('unix_socket and TLS options map to mysql2 settings', () => {
  const t = parseSqlalchemyUrl(
    'mysql+pymysql://nova:pw@/nova?unix_socket=/run/mysqld/mysqld.sock&ssl_ca=/etc/ca.pem&ssl_cert=/etc/c.pem&ssl_key=/etc/k.pem&ssl_verify_cert=false',
    'x',
  );
  assert.equal(t.socketPath, '/run/mysqld/mysqld.sock');
  assert.equal(t.host, undefined);
  assert.deepEqual(t.tls, { ca: '/etc/ca.pem', cert: '/etc/c.pem', key: '/etc/k.pem', verify: false });
  assert.equal(describeDbTarget(t), 'nova at socket /run/mysqld/mysqld.sock');
});

test('IPv6 host in brackets', () => {
  const t = parseSqlalchemyUrl('mysql+pymysql://nova:pw@[fd00::5]:3306/nova', 'x');
  assert.equal(t.host, 'fd00::5');
});

test('other schemes are refused with a message that names the option, never the URL', () => {
  assert.throws(
    () => parseSqlalchemyUrl('postgresql://nova:hunter2@db/nova', '[api_database] connection'),
    (err: Error) =>
      /\[api_database\] connection uses the "postgresql" scheme; only MySQL\/MariaDB/.test(err.message) && !err.message.includes('hunter2'),
  );
  assert.throws(() => parseSqlalchemyUrl('not a url', 'x'), /not a valid SQLAlchemy database URL/);
  assert.throws(() => parseSqlalchemyUrl('mysql://a:b@h:port/db', 'x'), /invalid port/);
});
