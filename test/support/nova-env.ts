import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// Where the throw-away Nova databases of this test run live (written by prepare-nova-schema).

export const STATE_DIR = process.env.NOVA_BDM_STATE_DIR ?? join(__dirname, '..', '..', '..', 'test', '.state');
export const ENV_FILE = join(STATE_DIR, 'nova-env.json');
export const BUNDLE = join(__dirname, '..', '..', '..', 'ansible', 'plugins', 'modules', 'bdm.cjs');

export interface NovaTestEnv {
  /** nova.conf for nova-manage and for us: [api_database] + [database] (cell1) + transport_url. */
  confPath: string;
  /** The DB user's password: has characters that need percent-encoding in URLs. */
  dbPassword: string;
  dbUser: string;
  apiUrl: string;
  cell0Url: string;
  cell1Url: string;
  cell2Url: string;
  databases: { api: string; cell0: string; cell1: string; cell2: string };
  cells: { cell0: string; cell1: string; cell2: string };
}

export function loadNovaTestEnv(): NovaTestEnv {
  return JSON.parse(readFileSync(ENV_FILE, 'utf8')) as NovaTestEnv;
}

/** Runs the real nova-manage (python3-nova) the way Debian's wrapper does. */
export const NOVA_MANAGE = ['/usr/bin/python3', '-c', 'import sys; from nova.cmd.manage import main; sys.exit(main())'];
