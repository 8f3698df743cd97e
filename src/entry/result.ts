import type { AuditResult } from '../actions/audit/audit';
import type { FleetRefreshResult } from '../actions/fleet/result';
import type { GetConnectorResult } from '../actions/get-connector';
import type { RefreshFailureReport, SingleRefreshResult } from '../actions/refresh/result';
import type { ShowResult } from '../actions/show';

// What the module answers, one typed result per action. `kind` tags the answer for TypeScript
// only: it is never printed, so the JSON stays what bdm.yml's RETURN documents (no field of it
// names the action).

/** Anything that failed before or instead of a result: one line, and for a refresh what was undone and what remains. */
export type FailureResult = {
  changed: false;
  failed: true;
  msg: string;
} & Partial<RefreshFailureReport> & {
    /** The stack (scrubbed), at -vvv only. */
    exception?: string;
  };

export type Outcome =
  | { kind: 'show'; result: ShowResult }
  | { kind: 'get_connector'; result: GetConnectorResult }
  | { kind: 'audit'; result: AuditResult }
  /** One BDM; in check mode a WouldRefreshResult in place of a RefreshedResult. */
  | { kind: 'refresh'; result: SingleRefreshResult }
  /** The fleet form; check mode has the same shape (new_attachment_id null). */
  | { kind: 'fleet_refresh'; result: FleetRefreshResult }
  /** The error behind it, so the CLI can pick nova-manage's exit code. */
  | { kind: 'failure'; result: FailureResult; error: Error };

export type OutcomeKind = Outcome['kind'];

/** The JSON the module prints. */
export type ModuleResult = Outcome['result'];

/** The warnings of any result (free text: the entry scrubs them, the CLI prints them on stderr). */
export function warningsOf(result: ModuleResult): string[] {
  return 'warnings' in result ? (result.warnings ?? []) : [];
}

/** The msg of a result that failed, wholly or (a fleet refresh, an audit) in part; undefined when it did not. */
export function failureMsg(result: ModuleResult): string | undefined {
  return 'failed' in result && result.failed === true ? result.msg : undefined;
}
