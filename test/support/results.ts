import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { FleetRefreshResult } from '../../src/actions/fleet/result';
import type { FailureResult, ModuleResult, Outcome, OutcomeKind } from '../../src/entry/result';
import type { SingleRefreshResult } from '../../src/actions/refresh/result';
import type { ShowResult } from '../../src/actions/show';

// Typed reads of the module's answers in tests: narrow an Outcome by its kind (asserting it), or
// read a result whose kind a test checks field by field through `Fields`.

export type ResultOf<K extends OutcomeKind> = Extract<Outcome, { kind: K }>['result'];

/** The result of an outcome of this kind; fails the test (with what came instead) otherwise. */
export function resultOf<K extends OutcomeKind>(outcome: Outcome, kind: K): ResultOf<K> {
  assert.equal(outcome.kind, kind, `expected a ${kind} result, got ${outcome.kind}: ${JSON.stringify(outcome.result).slice(0, 800)}`);
  return outcome.result as ResultOf<K>;
}

type KeysOfUnion<T> = T extends unknown ? keyof T : never;
type FieldOf<T, K extends PropertyKey> = T extends unknown ? (K extends keyof T ? T[K] : undefined) : never;

/**
 * Every field any member of a union of results has, typed as what the members hold there
 * (undefined where one has none): how a test reads an answer that may be a failure or a success.
 */
export type Fields<T> = { [K in KeysOfUnion<T>]?: FieldOf<T, K> };

/** What a single refresh (or a show through the same helper) can answer. */
export type RefreshAnswer = Fields<SingleRefreshResult | ShowResult | FailureResult>;

/** Any answer of the module, read field by field. */
export type AnyAnswer = Fields<ModuleResult>;

function isDict(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** connection_info as a result carries it (masked JSON): its data dict, asserted to be one. */
export function infoData(info: unknown): Record<string, unknown> {
  assert.ok(isDict(info), `connection_info is not a dict: ${JSON.stringify(info)}`);
  const { data } = info;
  assert.ok(isDict(data), `connection_info.data is not a dict: ${JSON.stringify(info)}`);
  return data;
}

/** Any answer, success or failure, read field by field (for tests that check failed and msg first). */
export function answer(o: Outcome): AnyAnswer {
  return o.result;
}

/** The entry of this BDM in a result's list (refreshed, skips, failures, stale); fails the test when it is not there. */
export function entryFor<T extends { bdm_uuid: string | null }>(items: readonly T[], bdmUuid: string): T {
  const found = items.find((e) => e.bdm_uuid === bdmUuid);
  assert.ok(found, `BDM ${bdmUuid} not in ${JSON.stringify(items.map((e) => e.bdm_uuid))}`);
  return found;
}

/**
 * The fact nova_bdm_refresh_summary that the role refresh_connection_info sets (its tasks/main.yml):
 * fields of the fleet refresh's result as the module returned them, and what the role adds.
 */
export type RefreshSummaryFact = Pick<FleetRefreshResult, 'msg' | 'summary' | 'counts' | 'refreshed' | 'skips' | 'failures'> &
  // The role always passes connector_attempts: the module always answers connector_errors.
  Required<Pick<FleetRefreshResult, 'connector_errors'>> & {
    /** ansible_check_mode */
    check_mode: boolean;
    /** null without nova_bdm_report_path. */
    report_path: NonNullable<FleetRefreshResult['report_path']> | null;
  };

/** Every key of RefreshSummaryFact, as the role sets them (test/unit/role-summary-fact.test.ts compares). */
export const REFRESH_SUMMARY_KEYS = [
  'check_mode',
  'msg',
  'summary',
  'counts',
  'refreshed',
  'skips',
  'failures',
  'connector_errors',
  'report_path',
] as const satisfies ReadonlyArray<keyof RefreshSummaryFact>;

/** Fails the build when RefreshSummaryFact has a key REFRESH_SUMMARY_KEYS does not list. */
export type EveryRefreshSummaryKeyListed = Unlisted<Exclude<keyof RefreshSummaryFact, (typeof REFRESH_SUMMARY_KEYS)[number]>>;
type Unlisted<K extends never> = K;

/** The summary fact a test's playbook wrote to a file (`nova_bdm_refresh_summary | to_json`). */
export function readRefreshSummary(file: string): RefreshSummaryFact {
  return JSON.parse(readFileSync(file, 'utf8')) as RefreshSummaryFact;
}

/** A run of the role and its summary fact; reading `summary` fails the test (with the run's output) when the role set none. */
export function withRefreshSummary<R extends { out: string }>(run: R, file: string): { run: R; readonly summary: RefreshSummaryFact } {
  const fact = existsSync(file) ? readRefreshSummary(file) : undefined;
  return {
    run,
    get summary() {
      assert.ok(fact, `the role set no nova_bdm_refresh_summary:\n${run.out}`);
      return fact;
    },
  };
}
