import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { writeJsonLine } from '../../src/output/json-lines';

// The module's answer is written in slices: byte for byte what JSON.stringify gives, one line.

test('writeJsonLine writes exactly JSON.stringify(value) + newline, big arrays included', async () => {
  const cases: Array<Record<string, unknown>> = [
    {},
    { a: 1, skipped: undefined, fn: () => 1, list: [1, undefined, 'x"y\n'], nested: { u: undefined, n: null } },
    { stale: Array.from({ length: 2501 }, (_, i) => ({ i, u: undefined, s: `b-${i}` })), msg: 'after the big list' },
    { exactly: Array.from({ length: 1000 }, (_, i) => i) },
    { justOver: Array.from({ length: 1001 }, (_, i) => i), last: [] },
  ];
  for (const value of cases) {
    const out = new PassThrough({ highWaterMark: 64 }); // tiny buffer: the writer must wait for drain
    const chunks: string[] = [];
    out.on('data', (d: Buffer) => chunks.push(d.toString()));
    await writeJsonLine(out, value);
    assert.equal(chunks.join(''), `${JSON.stringify(value)}\n`);
  }
});
