// WANT_JSON
// nova-bdm: an Ansible module (Ansible passes the path of a JSON arguments file), a stdin
// filter (`-`), and a human CLI, all over one core (run.ts).
import { readFileSync, statSync } from 'node:fs';
import { parseCli, USAGE } from './cli/parse';
import { readRegularTextFile } from './config/read-file';

/** Ansible's args file is small; a huge one is refused before it exhausts memory. */
const MAX_ARGS_FILE_BYTES = 64 * 1024 * 1024;

const EXIT_USAGE = 64;

async function main(argv: string[]): Promise<number> {
  const [first] = argv;
  if (argv.length === 1 && first !== undefined && (first === '-' || isArgsFile(first))) {
    return runAnsible(first);
  }
  const command = parseCli(argv);
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command.kind === 'usage-error') {
    process.stderr.write(`nova-bdm: ${command.message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  const [{ execute }, { failureMsg, warningsOf }] = await Promise.all([import('./entry/run'), import('./entry/result')]);
  const outcome = await execute(command.moduleArgs);
  const failed = failureMsg(outcome.result);
  // A fleet refresh that failed for some BDMs still prints what it did.
  const partial = outcome.kind === 'fleet_refresh' && failed !== undefined;
  if (failed !== undefined && !partial) {
    process.stderr.write(`${failed}\n`);
    const { exitCodeFor } = await import('./cli/exit-codes');
    return exitCodeFor(outcome.kind === 'failure' ? outcome.error : undefined, String(command.moduleArgs.action));
  }
  const { renderResult } = await import('./cli/render');
  process.stdout.write(`${renderResult(outcome, command.render)}\n`);
  for (const w of warningsOf(outcome.result)) process.stderr.write(`warning: ${w}\n`);
  if (partial) {
    process.stderr.write(`${failed}\n`);
    return 1;
  }
  // A CI gate can fail on stale BDMs by exit code alone.
  if (outcome.kind === 'audit' && outcome.result.totals.stale > 0) return 4;
  return 0;
}

/** Ansible's convention: one argument, the path of a file holding the JSON arguments. */
function isArgsFile(arg: string): boolean {
  if (['bdm', 'volume_attachment', 'get_connector'].includes(arg) || arg.startsWith('-')) return false;
  try {
    return statSync(arg).isFile(); // runAnsible reads it; here only whether it is there
  } catch {
    return false;
  }
}

async function runAnsible(source: string): Promise<number> {
  let raw: unknown;
  try {
    raw = JSON.parse(source === '-' ? readFileSync(0, 'utf8') : readRegularTextFile(source, MAX_ARGS_FILE_BYTES));
  } catch (err) {
    const what = source === '-' ? 'standard input' : source;
    const reason = err instanceof SyntaxError ? 'is not valid JSON' : 'cannot be read';
    process.stdout.write(`${JSON.stringify({ changed: false, failed: true, msg: `module arguments in ${what} ${reason}` })}\n`);
    return 1;
  }
  const [{ execute }, { failureMsg }] = await Promise.all([import('./entry/run'), import('./entry/result')]);
  const { result } = await execute(raw);
  const { writeJsonLine } = await import('./output/json-lines');
  await writeJsonLine(process.stdout, result);
  return failureMsg(result) === undefined ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Only reached by a bug in the entry code itself: still answer in one line, no trace.
    process.stdout.write(
      `${JSON.stringify({ changed: false, failed: true, msg: `unexpected error: ${String((err as Error)?.message ?? err).split('\n')[0]}` })}\n`,
    );
    process.exitCode = 1;
  },
);
