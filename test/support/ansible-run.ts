import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { recordOutput } from './secret-scan-record';

// One ansible-* command run from a test's work dir against the collection installed there.
// Always asynchronous: the stand-ins a test serves from its own process must keep answering.

export interface AnsibleRun {
  code: number | null;
  out: string;
  ms: number;
}

export interface AnsibleWorkspace {
  /** cwd, and home of ANSIBLE_HOME / ANSIBLE_LOCAL_TEMP. */
  work: string;
  collectionsPath: string;
}

export function runAnsible(
  ws: AnsibleWorkspace,
  command: string,
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number; record?: boolean } = {},
): Promise<AnsibleRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ws.work,
      env: {
        ...process.env,
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_FORCE_COLOR: '0',
        ANSIBLE_LOCALHOST_WARNING: 'false',
        ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false',
        ANSIBLE_COLLECTIONS_PATH: ws.collectionsPath,
        ANSIBLE_HOME: join(ws.work, 'ansible-home'),
        ANSIBLE_LOCAL_TEMP: join(ws.work, 'ansible-tmp'),
        ANSIBLE_RETRY_FILES_ENABLED: 'false',
        ANSIBLE_STDOUT_CALLBACK: 'default',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (options.record !== false) recordOutput(command, out); // for the whole-suite secret scan
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}
