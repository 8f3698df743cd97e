import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execute } from '../src/entry/run';
import { answer } from './support/results';
import { USERS } from './support/fake-openstack';
import { CONTROLLER_HOST, RefreshEnv } from './support/refresh-env';

// At -vvv (Ansible verbosity 3) a failure carries the traceback. For every error class -
// Keystone 401 and 5xx, Cinder errors, RPC errors, a lost database - the whole result,
// traceback included, holds none of the secrets set in the arguments and the configuration.

let env: RefreshEnv;
const RABBIT_PW = `Rabb1t-${randomUUID().slice(0, 8)}-s3cret`;
const WRONG_KEYSTONE_PW = `Wr0ng-${randomUUID().slice(0, 8)}-ks`;
const ARG_DB_PW = `Arg-db-${randomUUID().slice(0, 8)}`;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

function secrets(): string[] {
  return [
    USERS.nova,
    USERS['nova-service'],
    env.fx.env.dbPassword,
    encodeURIComponent(env.fx.env.dbPassword),
    RABBIT_PW,
    WRONG_KEYSTONE_PW,
    ARG_DB_PW,
    'cephkeyringsecret',
    'AQBnewkeyringsecret',
    'chapsecret-pw',
    'discovery-chap-pw',
  ];
}

function conf(text: string): string {
  const path = join(env.dir, `conf-${randomUUID().slice(0, 8)}.conf`);
  writeFileSync(path, text);
  return path;
}

/** Runs a refresh at -vvv and checks the failure: its class of message, a traceback, no secret anywhere. */
async function failsWithoutSecrets(args: Record<string, unknown>, msg: RegExp) {
  const result = answer(await execute({ action: 'refresh', connector: env.connector, _ansible_verbosity: 3, ...args }));
  assert.equal(result.failed, true);
  assert.match(String(result.msg), msg);
  assert.equal(typeof result.exception, 'string', '-vvv gives the traceback');
  assert.match(String(result.exception), /\n\s+at /, 'a real stack');
  const text = JSON.stringify(result);
  for (const s of secrets()) assert.ok(!text.includes(s), `${s.slice(0, 6)}... leaked: ${text.slice(0, 300)}`);
  return result;
}

describe('every error class at -vvv, with secrets set in the arguments and the configuration', () => {
  test('Keystone refuses the credentials (401)', async () => {
    const s = await env.seed();
    const bad = conf(
      `[DEFAULT]\nhost = ${CONTROLLER_HOST}\n${env.cloud.nova_conf_sections().replace(`password = ${USERS.nova}`, `password = ${WRONG_KEYSTONE_PW}`)}`,
    );
    await failsWithoutSecrets(
      { bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, bad], force: true },
      /^Keystone authentication with \[cinder\] failed: the credentials were refused \(HTTP 401\)$/,
    );
  });

  test('Keystone fails (503)', async () => {
    const s = await env.seed();
    env.cloud.failNext('POST', /\/auth\/tokens$/, 503);
    try {
      await failsWithoutSecrets(
        { bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, env.extraConf], force: true },
        /^Keystone authentication with \[cinder\] failed: .*\(HTTP 503\)$/,
      );
    } finally {
      env.cloud.clearFaults();
    }
  });

  test('Cinder refuses (409 without a service token) and fails (500 at reserve), with the DB password given as an argument', async () => {
    const s = await env.seed();
    const noService = conf(`[DEFAULT]\nhost = ${CONTROLLER_HOST}\n${env.cloud.nova_conf_sections({ serviceUser: false })}`);
    const url = `mysql+pymysql://${env.fx.env.dbUser}:${encodeURIComponent(env.fx.env.dbPassword)}@127.0.0.1:3306/${env.fx.env.databases.cell1}?charset=utf8`;
    const maps = env.cloud.novaAttachmentId;
    env.cloud.novaAttachmentId = (_i, _v, attachmentId) => attachmentId; // Nova still maps it: Cinder wants the service token
    try {
      await failsWithoutSecrets(
        { bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, noService], database_connection: url, force: true },
        /failed at cinder_delete_old: .*\(HTTP 409\)/,
      );
    } finally {
      env.cloud.novaAttachmentId = maps;
    }
    const t = await env.seed();
    env.cloud.failNext('POST', /\/attachments$/, 500);
    try {
      await failsWithoutSecrets(
        { bdm_uuid: t.bdm.uuid, config_file: [env.fx.env.confPath, env.extraConf], database_connection: url, force: true },
        /failed at cinder_reserve: .*\(HTTP 500\)/,
      );
    } finally {
      env.cloud.clearFaults();
    }
  });

  test('RPC: the compute raises with a message that quotes a configured password; a silent compute; RabbitMQ refuses the login', async () => {
    const s = await env.seed();
    env.compute.behaviour = {
      kind: 'fail',
      cls: 'ProcessExecutionError',
      module: 'oslo_concurrency.processutils',
      message: `Unexpected error while running command: --password ${USERS.nova}`,
    };
    try {
      await failsWithoutSecrets(
        { bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, env.extraConf], force: true },
        /failed at rpc_remove_volume_connection: ProcessExecutionError: Unexpected error while running command: --password \*+/,
      );
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
    env.compute.behaviour = { kind: 'silent' };
    try {
      await failsWithoutSecrets(
        { bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, env.extraConf], force: true, rpc_timeout: 1 },
        /failed at rpc_remove_volume_connection: timed out after 1 s/,
      );
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
    const rabbit = conf(`[DEFAULT]\ntransport_url = rabbit://guest:${RABBIT_PW}@127.0.0.1:5672/\n`);
    await failsWithoutSecrets(
      { bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, env.extraConf, rabbit], force: true },
      /cannot connect to RabbitMQ \(127\.0\.0\.1:5672\/: access refused/,
    );
  });

  test('the cell database refuses the password given as an argument', async () => {
    const s = await env.seed();
    const url = `mysql+pymysql://${env.fx.env.dbUser}:${ARG_DB_PW}@127.0.0.1:3306/${env.fx.env.databases.cell1}?charset=utf8`;
    await failsWithoutSecrets(
      { bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, env.extraConf], database_connection: url },
      /cell1 database/,
    );
  });
});
