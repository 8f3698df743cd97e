import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter, mapWithConcurrency } from '../../src/actions/shared/limiter';

/** A task the test finishes by hand: the limiter's decisions are then seen one by one. */
class Gate {
  readonly started: string[] = [];
  private readonly finish = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  run = (name: string): Promise<void> => {
    this.started.push(name);
    return new Promise((resolve, reject) => this.finish.set(name, { resolve, reject }));
  };
  async end(name: string, error?: Error): Promise<void> {
    const f = this.finish.get(name);
    assert.ok(f, `${name} is running`);
    if (error) f.reject(error);
    else f.resolve();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }
}

test('at most limit run at once, started in the order added', async () => {
  const gate = new Gate();
  const limiter = new Limiter(gate.run, { limit: 2 });
  for (const n of ['a', 'b', 'c', 'd']) limiter.add(n);
  assert.deepEqual(gate.started, ['a', 'b']);
  await gate.end('b');
  assert.deepEqual(gate.started, ['a', 'b', 'c']);
  await gate.end('a');
  await gate.end('c');
  await gate.end('d');
  assert.deepEqual(await limiter.done(), []);
  assert.equal(limiter.peak, 2);
});

test('a full group lets the next items pass, and its own wait their turn', async () => {
  const gate = new Gate();
  const limiter = new Limiter(gate.run, { limit: 2, group: { of: (n) => n[0]!, limit: 1 } });
  for (const n of ['a1', 'a2', 'b1', 'c1']) limiter.add(n);
  assert.deepEqual(gate.started, ['a1', 'b1']);
  await gate.end('a1');
  // a2 comes before c1 in the queue and its host has room again.
  assert.deepEqual(gate.started, ['a1', 'b1', 'a2']);
  await gate.end('b1');
  assert.deepEqual(gate.started, ['a1', 'b1', 'a2', 'c1']);
});

test('once stopWhen says so nothing more starts; done() returns what never started, in order', async () => {
  const gate = new Gate();
  let stop = false;
  const limiter = new Limiter(gate.run, { limit: 1, stopWhen: () => stop });
  for (const n of ['a', 'b', 'c']) limiter.add(n);
  stop = true;
  const done = limiter.done();
  await gate.end('a');
  assert.deepEqual(await done, ['b', 'c']);
  assert.deepEqual(gate.started, ['a']);
});

test('the first failure stops new starts and is what room() and done() throw', async () => {
  const gate = new Gate();
  const limiter = new Limiter(gate.run, { limit: 1 });
  limiter.add('a');
  limiter.add('b');
  const room = limiter.room();
  await gate.end('a', new Error('Cinder is down'));
  await assert.rejects(room, /Cinder is down/);
  await assert.rejects(limiter.done(), /Cinder is down/);
  assert.deepEqual(gate.started, ['a']);
  await limiter.settled();
});

test('room() waits while the limit is reached (a producer cannot run ahead)', async () => {
  const gate = new Gate();
  const limiter = new Limiter(gate.run, { limit: 1 });
  limiter.add('a');
  let free = false;
  const room = limiter.room().then(() => (free = true));
  await Promise.resolve();
  assert.equal(free, false);
  await gate.end('a');
  await room;
  assert.equal(free, true);
});

test('mapWithConcurrency keeps the items order whatever order they finish in', async () => {
  let running = 0;
  let most = 0;
  const results = await mapWithConcurrency([30, 5, 20, 1, 10], 2, async (ms) => {
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, ms));
    running--;
    return ms * 2;
  });
  assert.deepEqual(results, [60, 10, 40, 2, 20]);
  assert.equal(most, 2);
});
