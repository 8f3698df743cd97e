import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const SRC = join(__dirname, '..', '..', '..', 'src');

// The layers of src/, top to bottom. One direction of flow: main.ts and cli/ (args in, JSON out) ->
// entry/ (glue) -> actions/ (use cases) -> the adapters, each owning one outside system -> config/
// (nova.conf and the URLs in it; the adapters read their settings from it, it reads none of them).
// The shared leaves are the vocabulary every layer may use (errors, the parsed selection, naive-UTC
// times, the connector, a cell's label, a file's kind in words, output formats); they import only each other, never a layer above them.
// args/ parses the module options: it is read by cli/ and entry/ and reads only config/ and the leaves.
const ADAPTERS = ['nova-db', 'rpc', 'cinder', 'lightos'] as const;
const SHARED_LEAVES = ['errors.ts', 'selection.ts', 'naive-utc.ts', 'connector.ts', 'cell-label.ts', 'file-kind.ts', 'output'] as const;
type Layer = 'main' | 'cli' | 'entry' | 'args' | 'actions' | 'adapter' | 'config' | 'leaf';

/** The layer of a file under src/ and, for an adapter, which one; a file in no layer fails the tests. */
function placeOf(file: string): { layer: Layer; unit: string } | undefined {
  const top = file.split('/')[0]!;
  if (file === 'main.ts') return { layer: 'main', unit: top };
  if ((SHARED_LEAVES as readonly string[]).includes(top)) return { layer: 'leaf', unit: top };
  if ((ADAPTERS as readonly string[]).includes(top)) return { layer: 'adapter', unit: top };
  if (top === 'config') return { layer: 'config', unit: top };
  if (['cli', 'entry', 'args', 'actions'].includes(top) && file !== top) return { layer: top as Layer, unit: top };
  return undefined;
}

function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

/** Every module a file imports (static, type-only, re-exports, import(), import types), read by TypeScript's parser. */
function importsOf(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(join(SRC, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteral(arg)) found.push(arg.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** A relative import as a path under src/; undefined for Node's and packages' modules. */
function resolveImport(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(SRC, dirname(from), spec);
  const found = [`${base}.ts`, join(base, 'index.ts')].find((p) => existsSync(p));
  if (!found) throw new Error(`${from}: cannot resolve ${spec}`);
  return relative(SRC, found);
}

const FILES = sourceFiles();
/** Each file under src/ and the files under src/ it imports. */
const GRAPH = new Map<string, string[]>(
  FILES.map((f) => [
    f,
    importsOf(f).flatMap((spec) => {
      const to = resolveImport(f, spec);
      return to === undefined ? [] : [to];
    }),
  ]),
);

interface Place {
  layer: Layer;
  unit: string;
  file: string;
}

/** Every import of src/ that the rule refuses, as "importer -> imported". */
function offenders(refused: (from: Place, to: Place) => boolean): string[] {
  const found: string[] = [];
  for (const [from, edges] of GRAPH) {
    for (const to of edges) {
      if (refused({ ...placeOf(from)!, file: from }, { ...placeOf(to)!, file: to })) found.push(`${from} -> ${to}`);
    }
  }
  return found;
}

test('every file under src/ belongs to a layer (a new folder must be placed here first)', () => {
  assert.ok(FILES.length > 50, `found only ${FILES.length} files under ${SRC}`);
  assert.deepEqual(
    FILES.filter((f) => placeOf(f) === undefined),
    [],
  );
});

test('src/config is a leaf: it imports only itself, Node and the shared leaves', () => {
  const found: string[] = [];
  for (const name of readdirSync(join(SRC, 'config'))) {
    for (const spec of importsOf(join('config', name))) {
      if (spec.startsWith('node:') || spec.startsWith('./')) continue;
      if (spec.startsWith('../') && placeOf(`${spec.slice(3)}.ts`)?.layer === 'leaf') continue;
      found.push(`${name} imports ${spec}`);
    }
  }
  assert.deepEqual(found, []);
});

test('an adapter imports no other adapter, no action, no args/, entry/, cli/ or main.ts: only itself, config/ and the leaves', () => {
  assert.deepEqual(
    offenders((from, to) => from.layer === 'adapter' && !(to.unit === from.unit || to.layer === 'config' || to.layer === 'leaf')),
    [],
  );
});

test('the shared leaves import only each other', () => {
  assert.deepEqual(
    offenders((from, to) => from.layer === 'leaf' && to.layer !== 'leaf'),
    [],
  );
});

/**
 * Being fixed on another branch (issue 19 item 5: the connector files are read in entry/). Each entry
 * must still be found: once the import is gone, the test fails until the entry is deleted here.
 */
test('the actions import no args/, entry/, cli/ or main.ts: they receive what those parse', () => {
  assert.deepEqual(
    offenders((from, to) => from.layer === 'actions' && ['args', 'entry', 'cli', 'main'].includes(to.layer)),
    [],
  );
});

test('args/ imports no action, entry/, cli/ or main.ts', () => {
  assert.deepEqual(
    offenders((from, to) => from.layer === 'args' && ['actions', 'entry', 'cli', 'main'].includes(to.layer)),
    [],
  );
});

test('only main.ts and cli/ import entry/ (besides entry/ itself)', () => {
  assert.deepEqual(
    offenders((from, to) => to.layer === 'entry' && !['main', 'cli', 'entry'].includes(from.layer)),
    [],
  );
});

// A module never imports itself again, through any chain of imports, type-only ones too: those are
// erased at run time, but a type that points back still ties two files into one (a result's types
// live in a file of their own, like actions/fleet/result.ts, that both can import).
test('src/ has no import cycle, not even through a type-only import', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    path.push(file);
    for (const to of GRAPH.get(file)!) {
      if (state.get(to) === 'open') cycles.push([...path.slice(path.indexOf(to)), to].join(' -> '));
      else if (!state.has(to)) visit(to);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of FILES) if (!state.has(file)) visit(file);
  assert.deepEqual(cycles, []);
});

test('the import graph is read: main.ts reaches every layer', () => {
  // Guards the tests above against a reader that finds no imports at all.
  const reached = new Set<string>();
  const walk = (file: string) => {
    if (reached.has(file)) return;
    reached.add(file);
    for (const to of GRAPH.get(file)!) walk(to);
  };
  walk('main.ts');
  const layers = new Set([...reached].map((f) => placeOf(f)!.layer));
  assert.deepEqual([...layers].sort(), ['actions', 'adapter', 'args', 'cli', 'config', 'entry', 'leaf', 'main']);
});

test('no copy of a true-words list outside NovaConf', () => {
  const copies = FILES.filter((f) => /TRUE_WORDS|\['1', 'true', 'yes', 'on'\]/.test(readFileSync(join(SRC, f), 'utf8')));
  assert.deepEqual(copies, []);
});
