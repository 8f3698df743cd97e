import { createHash, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  ftruncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { FakeOpenStack, USERS } from '../../support/fake-openstack';
import { Fixtures } from '../../support/fixtures';
import { registerSecrets } from '../../support/secret-scan';
import { CONNECTOR } from '../../support/refresh-env';

// The hostile world the fuzz properties throw inputs at: nova.conf files good and bad, path
// tricks (symlinks, .., a directory, a FIFO, a non-JSON file, a sparse 1 GB file), hostile BDM
// rows in the real cell DB, and every secret any of them holds (which no answer may contain).

export interface HostileBdm {
  uuid: string;
  instanceUuid: string;
  volumeId: string;
  what: string;
  /** Secret values inside this row's connection_info (shown only with reveal_secrets). */
  secrets: string[];
}

export class FuzzSandbox {
  readonly root = mkdtempSync(join(tmpdir(), 'nbh-fuzz-'));
  /** The working directory of the in-process runs: relative paths land (or fail) in here. */
  readonly cwd = join(this.root, 'a', 'b', 'cwd');
  /** Where a report may legitimately be written: the working directory (relative paths). */
  readonly okDir = this.cwd;
  readonly fx = new Fixtures();
  cloud!: FakeOpenStack;
  /** Secrets no answer may ever contain. */
  readonly secrets: string[] = [];
  /** Secrets allowed only when the input asked for reveal_secrets. */
  readonly rowSecrets: string[] = [];
  readonly confs: Record<string, string> = {};
  readonly paths: Record<string, string> = {};
  /** Paths where a report must be refused, or may be written (inside okDir): never another file. */
  readonly writePaths: Record<string, string> = {};
  /** Hostile rows cheap enough to hit thousands of times. */
  readonly bdms: HostileBdm[] = [];
  /**
   * The 10 MB and 100k-monitor rows, on their own instance and host, seeded only while the fixed
   * cases run (withHeavyRows): every unfiltered audit would otherwise read them.
   */
  private readonly heavyRows: Array<{ what: string; text: string; device: string }> = [];
  private heavyInstance = '';
  private heavySecrets: string[] = [];
  readonly instances: string[] = [];
  readonly host = `nbh-fuzz-${randomUUID().slice(0, 8)}`;
  readonly heavyHost = `${this.host}-heavy`;
  private seq = 0;

  static async create(): Promise<FuzzSandbox> {
    const s = new FuzzSandbox();
    mkdirSync(s.okDir, { recursive: true });
    s.cloud = await FakeOpenStack.start();
    s.writeConfs();
    s.writePathTricks();
    await s.seedHostileRows();
    return s;
  }

  secret(label: string): string {
    const v = `${label}-S3cr3t-${randomUUID().slice(0, 8)}`;
    this.secrets.push(v);
    registerSecrets([v], 'config'); // for the whole-suite scan too
    return v;
  }

  private file(name: string, content: string | Buffer): string {
    const p = join(this.root, name);
    writeFileSync(p, content);
    return p;
  }

  private writeConfs(): void {
    const good = readFileSync(this.fx.env.confPath, 'utf8');
    this.secrets.push(this.fx.env.dbPassword, ...Object.values(USERS));
    const wrongDbPw = this.secret('fuzz-db-pw');
    const wrongUrl = `mysql+pymysql://${this.fx.env.dbUser}:${encodeURIComponent(wrongDbPw)}@127.0.0.1:3306/${this.fx.env.databases.api}`;
    const rabbitPw = this.secret('fuzz-rabbit-pw');
    const keystonePw = this.secret('fuzz-keystone-pw');
    const cinder = this.cloud.nova_conf_sections();
    const c: Record<string, string> = {
      good: `${good}\n${cinder}`,
      wrongPassword: `[api_database]\nconnection = ${wrongUrl}\n[database]\nconnection = ${wrongUrl}\n`,
      refusedPort: `[api_database]\nconnection = mysql+pymysql://u:${encodeURIComponent(this.secret('fuzz-port-pw'))}@127.0.0.1:1/nova_api\n`,
      duplicateSections: `${good}\n[api_database]\nconnection = ${wrongUrl}\n[api_database]\n[DEFAULT]\ntransport_url = rabbit://nova:${rabbitPw}@127.0.0.1:1/\n[DeFaUlT]\nhost = dup\n`,
      noSections: `connection = ${wrongUrl}\ntransport_url = rabbit://u:${rabbitPw}@127.0.0.1:1/\npassword = ${keystonePw}\n`,
      binary: '',
      garbageUrls: `[api_database]\nconnection = mysql+pymysql://:${keystonePw}@[::1/x?ssl_ca=${this.root}/fifo\n[database]\nconnection = sqlite:////tmp/x.db\n[DEFAULT]\ntransport_url = rabbit://a:${rabbitPw}@/,,,:@\n`,
      notMysql: `[api_database]\nconnection = postgresql://nova:${keystonePw}@127.0.0.1:1/nova\n`,
      continuation: `[api_database]\nconnection = ${wrongUrl}\n  ${keystonePw}\n[cinder]\nauth_type = password\nauth_url = http://127.0.0.1:1/identity\npassword = ${keystonePw}\n    continued ${keystonePw}\n`,
      cinderBroken: `${good}\n[cinder]\nauth_type = password\nauth_url = ${this.cloud.url}/identity\nusername = nova\npassword = ${keystonePw}\nproject_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n`,
      unclosedHeader: `[api_database\nconnection = ${wrongUrl}\n[\n]\n[[x]]\n= value\nkey_only\n`,
      crlfBom: `\ufeff[api_database]\r\nconnection = ${wrongUrl}\r\n`,
      hugeLine: `[api_database]\nconnection = ${'x'.repeat(2_000_000)}\n`,
      empty: '',
    };
    const binary = Buffer.alloc(4096);
    for (let i = 0; i < binary.length; i++) binary[i] = (i * 131 + 7) % 256;
    for (const [name, text] of Object.entries(c)) this.confs[name] = this.file(`nova-${name}.conf`, text);
    this.confs.binary = this.file(
      'nova-binary.conf',
      Buffer.concat([
        Buffer.from(`[api_database]\nconnection = ${wrongUrl}\n`),
        binary,
        Buffer.from(`\n\0[database]\0\nconnection=\0${wrongDbPw}\n`),
      ]),
    );
  }

  private writePathTricks(): void {
    const p = this.paths;
    p.connector = this.file('connector.json', JSON.stringify({ ...CONNECTOR, host: this.host }));
    p.notJson = this.file('not-json.txt', 'this is not JSON {');
    p.jsonArray = this.file('array.json', '[1,2,3]');
    p.empty = this.file('empty.json', '');
    p.binary = this.file('binary.bin', Buffer.from([0, 255, 254, 0, 10, 13, 0xc3, 0x28]));
    p.deepJson = this.file('deep.json', `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`);
    p.protoJson = this.file(
      'proto.json',
      JSON.stringify(CONNECTOR).replace('{', '{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},'),
    );
    p.dir = join(this.root, 'a-directory');
    mkdirSync(p.dir);
    p.fifo = join(this.root, 'fifo');
    execFileSync('mkfifo', [p.fifo]);
    p.big = join(this.root, 'big-1g');
    const fd = openSync(p.big, 'w');
    ftruncateSync(fd, 1024 * 1024 * 1024); // sparse: 1 GB to read, nothing on disk
    closeSync(fd);
    p.victim = this.file('victim.txt', 'a file nova-bdm must never touch\n');
    const link = (name: string, target: string) => {
      const l = join(this.root, name);
      symlinkSync(target, l);
      return l;
    };
    p.linkToVictim = link('link-to-victim', p.victim);
    p.linkToConnector = link('link-to-connector', p.connector);
    p.linkToFifo = link('link-to-fifo', p.fifo);
    p.linkToDir = link('link-to-dir', p.dir);
    p.linkToBig = link('link-to-big', p.big);
    p.dangling = link('dangling', join(this.root, 'does-not-exist'));
    p.loop = link('loop', join(this.root, 'loop'));
    p.linkToEtcPasswd = link('link-to-passwd', '/etc/passwd');
    p.dotdot = join(this.root, 'a-directory', '..', 'connector.json');
    p.missingDotdot = join(this.root, 'missing', '..', 'connector.json');
    p.relative = 'relative-name.json';
    p.relativeUp = '../../../victim.txt';
    p.devNull = '/dev/null';
    p.proc = '/proc/self/environ';
    p.nul = `${this.root}/x\0y`;
    p.newline = `${this.cwd}/line\nbreak.json`;
    p.long = join(this.root, 'l'.repeat(300));
    p.deepPath = join(this.root, ...Array(200).fill('d'));
    // Regular files outside okDir may be read, but a report there would rightly replace them.
    const regularOutside = new Set([
      p.connector,
      p.notJson,
      p.jsonArray,
      p.empty,
      p.binary,
      p.deepJson,
      p.protoJson,
      p.big,
      p.victim,
      p.dotdot,
      p.relativeUp,
    ]);
    for (const [k, v] of Object.entries(p)) if (!regularOutside.has(v)) this.writePaths[k] = v;
  }

  private async seedHostileRows(): Promise<void> {
    const fx = this.fx;
    const keyring = this.rowSecret('keyring');
    const chap = this.rowSecret('chap');
    const active = await fx.seedInstance('cell1', { host: this.host, vm_state: 'active', display_name: 'fuzz \u202e\u0000 \u2028 \u00e9' });
    const stopped = await fx.seedInstance('cell1', { host: this.host, vm_state: 'stopped', display_name: 'x'.repeat(255) });
    this.heavyInstance = await fx.seedInstance('cell1', { host: this.heavyHost, vm_state: 'stopped' });
    this.instances.push(active, stopped, this.heavyInstance);
    this.heavySecrets = [keyring, chap];
    const deep = (n: number) => `${'{"d":'.repeat(n)}{"keyring":"${keyring}"}${'}'.repeat(n)}`;
    const rows: Array<[string, string | null, Record<string, unknown>?]> = [
      ['not JSON', `{"driver_volume_type": "rbd", "data": {"keyring": "${keyring}"`],
      [
        '10 MB',
        JSON.stringify({
          driver_volume_type: 'rbd',
          data: { keyring, hosts: ['192.0.2.1'], ports: ['6789'], blob: 'x'.repeat(10 * 1024 * 1024) },
        }),
      ],
      ['1,000 levels deep', `{"driver_volume_type":"rbd","data":${deep(1000)}}`],
      [
        '__proto__ keys',
        `{"driver_volume_type":"rbd","__proto__":{"keyring":"${keyring}","admin":true},"data":{"__proto__":{"auth_password":"${chap}"},"hosts":["h"],"ports":["1"]},"constructor":{"prototype":{"polluted":true}}}`,
      ],
      ['a JSON array', `[{"keyring":"${keyring}"}]`],
      // Masking is by key (scrubbing free text by pattern was dropped on purpose: what follows
      // "password" in a text is not necessarily a secret), so the text shapes hold no secret.
      ['a JSON string', JSON.stringify('keyring=see the secret_uuid')],
      ['a number', '42'],
      ['the text null', 'null'],
      ['empty', ''],
      ['NULL', null],
      [
        'control characters and NUL',
        `{"driver_volume_type":"rbd\\u0000\\n","data":{"keyring":"${keyring}\\u0000","name":"\\u202e\\ud800"}}`,
      ],
      ['wrong types', `{"driver_volume_type":{"keyring":"${keyring}"},"data":"auth_password=see above"}`],
      ['data an array', `{"driver_volume_type":"rbd","data":[{"keyring":"${keyring}"}]}`],
      ['hosts a string, ports null', `{"driver_volume_type":"rbd","data":{"hosts":"192.0.2.1","ports":null,"keyring":"${keyring}"}}`],
      [
        '100k monitors',
        JSON.stringify({
          driver_volume_type: 'rbd',
          data: {
            hosts: Array.from({ length: 100_000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`),
            ports: ['6789'],
            keyring,
          },
        }),
      ],
      [
        'iSCSI with CHAP',
        JSON.stringify({
          driver_volume_type: 'iscsi',
          data: {
            target_portal: '192.0.2.50:3260',
            auth_method: 'CHAP',
            auth_username: 'u',
            auth_password: chap,
            discovery_auth_password: chap,
          },
        }),
      ],
      [
        'password words in a free-text field',
        JSON.stringify({
          driver_volume_type: 'rbd',
          data: { name: 'volumes/x password=unset', hosts: ['h'], ports: ['1'], auth_password: chap },
        }),
      ],
    ];
    for (const [i, [what, text]] of rows.entries()) {
      const instanceUuid = i % 2 === 0 ? active : stopped;
      const device = `/dev/vd${String.fromCharCode(98 + (i % 24))}`;
      if (what === '10 MB' || what === '100k monitors') {
        this.heavyRows.push({ what, text: text!, device });
        continue;
      }
      const b = await fx.seedBdm('cell1', instanceUuid, { connection_info: text, device_name: device });
      this.bdms.push({ uuid: b.uuid, instanceUuid, volumeId: b.volumeId, what, secrets: [keyring, chap] });
    }
    // A BDM that is not a volume, and one whose volume_id is NULL.
    const local = await fx.seedBdm('cell1', active, {
      source_type: 'image',
      destination_type: 'local',
      volume_id: null,
      attachment_id: null,
      connection_info: null,
      device_name: '/dev/vda',
    });
    this.bdms.push({ uuid: local.uuid, instanceUuid: active, volumeId: randomUUID(), what: 'a local disk', secrets: [] });
  }

  async withHeavyRows(run: (bdms: HostileBdm[]) => Promise<void>): Promise<void> {
    const bdms: HostileBdm[] = [];
    for (const r of this.heavyRows) {
      const b = await this.fx.seedBdm('cell1', this.heavyInstance, { connection_info: r.text, device_name: r.device });
      bdms.push({ uuid: b.uuid, instanceUuid: this.heavyInstance, volumeId: b.volumeId, what: r.what, secrets: this.heavySecrets });
    }
    try {
      await run(bdms);
    } finally {
      await this.fx.cell('cell1').deleteFrom('block_device_mapping').where('instance_uuid', '=', this.heavyInstance).execute();
    }
  }

  private rowSecret(label: string): string {
    const v = `${label}-R0w5ecret-${randomUUID().slice(0, 8)}`;
    this.rowSecrets.push(v);
    registerSecrets([v], 'data');
    return v;
  }

  /** A fresh path under okDir: the one place a report may be written. */
  reportTarget(): string {
    return join(this.okDir, `report-${++this.seq}.json`);
  }

  /** Names, types, sizes and link targets of everything in the sandbox but okDir. */
  snapshot(): string {
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir).sort()) {
        const p = join(dir, name);
        if (p === this.okDir) continue;
        const st = lstatSync(p);
        const kind = st.isSymbolicLink()
          ? `link->${readlinkSync(p)}`
          : st.isDirectory()
            ? 'dir'
            : st.isFIFO()
              ? 'fifo'
              : `file:${st.size}:${(st.mode & 0o777).toString(8)}:${st.mtimeMs}`;
        out.push(`${p} ${kind}`);
        if (st.isDirectory()) walk(p);
      }
    };
    walk(this.root);
    // temp files of a report left behind in okDir would be a failed run's leftovers
    for (const name of readdirSync(this.okDir)) if (name.endsWith('.tmp')) out.push(`${join(this.okDir, name)} leftover-temp`);
    return out.join('\n');
  }

  /** A digest of every DB row the hostile instances own: a fuzz input must never change one. */
  async dbDigest(): Promise<string> {
    const db = this.fx.cell('cell1');
    const h = createHash('sha256');
    const rows = await Promise.all([
      db.selectFrom('instances').selectAll().where('uuid', 'in', this.instances).orderBy('id').execute(),
      db
        .selectFrom('block_device_mapping')
        .select(['id', 'uuid', 'deleted', 'updated_at', 'attachment_id', 'volume_id', sql<string>`MD5(connection_info)`.as('info')])
        .where('instance_uuid', 'in', this.instances)
        .orderBy('id')
        .execute(),
      db.selectFrom('instance_system_metadata').selectAll().where('instance_uuid', 'in', this.instances).orderBy('id').execute(),
      db.selectFrom('instance_actions').selectAll().where('instance_uuid', 'in', this.instances).orderBy('id').execute(),
    ]);
    h.update(JSON.stringify(rows));
    return h.digest('hex');
  }

  /** Cinder mutations so far (token requests aside): a fuzz input must never cause one. */
  cinderMutations(): number {
    return this.cloud.log.filter((m) => m.method !== 'GET' && !m.path.startsWith('/identity')).length;
  }

  async close(): Promise<void> {
    // Leave the shared test DBs as they were: later audits need not scan our hostile rows.
    const cell = this.fx.cell('cell1');
    if (this.instances.length > 0) {
      await cell.deleteFrom('block_device_mapping').where('instance_uuid', 'in', this.instances).execute();
      await cell.deleteFrom('instances').where('uuid', 'in', this.instances).execute();
      await this.fx.api.deleteFrom('instance_mappings').where('instance_uuid', 'in', this.instances).execute();
    }
    await Promise.all([this.cloud.stop(), this.fx.close()]);
    rmSync(this.root, { recursive: true, force: true });
  }
}
