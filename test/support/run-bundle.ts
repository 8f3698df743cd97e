import { spawn } from 'node:child_process';
import { BUNDLE } from './nova-env';

/**
 * The built bundle as a CLI, asynchronously: tests whose stand-in compute and Cinder live in
 * this process cannot block it with spawnSync.
 */
export function runBundle(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(BUNDLE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr: stderr.trim() }));
  });
}
