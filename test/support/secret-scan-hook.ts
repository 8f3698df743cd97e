import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import Module from 'node:module';
import { join } from 'node:path';
import { recordOutput, SCAN_LOG_ENV } from './secret-scan-record';

// Loaded by `npm test` into every node process of the run (NODE_OPTIONS=--require): in a
// process running the bundle (directly, under Ansible, or killed half-way) it records every
// stdout/stderr chunk; in a test process it records what each in-process `execute` returns and
// the report file it wrote. secret-scan.ts scans the records after the suite. Nothing here may
// change what the processes do: it only copies what they write.

const main = process.argv[1];
if (process.env[SCAN_LOG_ENV] && main) {
  if (isBundle(main)) recordBundle();
  else recordExecute();
}

function isBundle(file: string): boolean {
  try {
    const fd = openSync(file, 'r');
    try {
      const head = Buffer.alloc(160);
      const n = readSync(fd, head, 0, head.length, 0);
      return /^#!.*node\n\/\/ WANT_JSON\n\/\/ nova-bdm /.test(head.subarray(0, n).toString('latin1'));
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function recordBundle(): void {
  // reveal_secrets arrives on the command line or in the JSON the bundle reads (args file, stdin).
  let revealed = process.argv.includes('--reveal-secrets');
  const fs = require('node:fs') as typeof import('node:fs');
  const originalRead = fs.readFileSync;
  fs.readFileSync = function (this: unknown, ...args: unknown[]) {
    const out = (originalRead as (...a: unknown[]) => string | Buffer).apply(this, args);
    if (!revealed) {
      try {
        const text = typeof out === 'string' ? out : out.toString('utf8');
        if (text.includes('reveal_secrets') && asksToReveal(JSON.parse(text))) revealed = true;
      } catch {
        // not JSON (nova.conf): not the arguments
      }
    }
    return out;
  } as typeof fs.readFileSync;
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = process[name];
    const write = stream.write.bind(stream) as (...a: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      recordOutput(`bundle ${name}`, chunk, { revealed });
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
}

function recordExecute(): void {
  // Wrapped when a test first loads src/entry/run (compiled: dist/src/entry/run.js), whoever loads it.
  const target = join(__dirname, '..', '..', 'src', 'entry', 'run.js');
  const loader = Module as unknown as {
    _load: (request: string, parent: unknown, isMain: boolean) => unknown;
    _resolveFilename: (request: string, parent: unknown) => string;
  };
  const originalLoad = loader._load;
  let wrapped = false;
  loader._load = function (this: unknown, request: string, parent: unknown, isMain: boolean) {
    const exported = originalLoad.call(this, request, parent, isMain) as {
      execute?: (raw: unknown) => Promise<{ result: Record<string, unknown> }>;
    };
    if (
      !wrapped &&
      /(^|[\\/])run(\.js)?$/.test(request) &&
      typeof exported?.execute === 'function' &&
      loader._resolveFilename(request, parent) === target
    ) {
      wrapped = true;
      const execute = exported.execute;
      exported.execute = async (raw: unknown) => {
        const outcome = await execute(raw);
        const revealed = asksToReveal(raw);
        recordOutput('execute', outcome.result, { revealed });
        for (const [key, what] of [
          ['report_path', 'report file'],
          ['metrics_path', 'metrics file'],
        ] as const) {
          const path = outcome.result?.[key];
          if (typeof path !== 'string') continue;
          try {
            recordOutput(what, readFileSync(path, 'utf8'), { revealed });
          } catch {
            // already removed by the test
          }
        }
        return outcome;
      };
    }
    return exported;
  };
}

/** reveal_secrets as the module's coercion reads it: true, or Ansible's boolean words (YES, on, 1). */
function asksToReveal(args: unknown): boolean {
  const v = (args as { reveal_secrets?: unknown } | null)?.reveal_secrets;
  return v === true || v === 1 || (typeof v === 'string' && /^(y|yes|on|1|true|t)$/i.test(v.trim()));
}
