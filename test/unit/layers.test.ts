import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const SRC = join(__dirname, '..', '..', '..', 'src');

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import\()\s*'([^']+)'/g)].map((m) => m[1]!);
}

test('src/config is a leaf: it imports only itself, Node and the shared error types', () => {
  const offenders: string[] = [];
  for (const name of readdirSync(join(SRC, 'config'))) {
    for (const spec of importsOf(join(SRC, 'config', name))) {
      if (spec.startsWith('node:') || spec.startsWith('./') || spec === '../errors') continue;
      offenders.push(`${name} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('no copy of a true-words list outside NovaConf', () => {
  const copies: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/TRUE_WORDS|\['1', 'true', 'yes', 'on'\]/.test(readFileSync(p, 'utf8'))) copies.push(p);
    }
  };
  walk(SRC);
  assert.deepEqual(copies, []);
});
