import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REFRESH_SUMMARY_KEYS } from '../support/results';
import { loadYaml } from '../support/yaml';

// The role's nova_bdm_refresh_summary fact is built in Jinja from the module's result; the tests
// read it as RefreshSummaryFact. Its keys are those of the type (checked at build time in
// results.ts): the role must set exactly them.

const TASKS = join(__dirname, '..', '..', '..', 'ansible', 'roles', 'refresh_connection_info', 'tasks', 'main.yml');

test('the role sets nova_bdm_refresh_summary with exactly the keys of RefreshSummaryFact', () => {
  const tasks = loadYaml(TASKS) as Array<Record<string, any>>;
  const setting = tasks.filter((t) => t['ansible.builtin.set_fact']?.nova_bdm_refresh_summary !== undefined);
  assert.equal(setting.length, 1, 'one task sets the fact');
  const fact = setting[0]!['ansible.builtin.set_fact'].nova_bdm_refresh_summary as Record<string, unknown>;
  assert.deepEqual(Object.keys(fact).sort(), [...REFRESH_SUMMARY_KEYS].sort());
});
