import type { FleetRefreshResult } from './result';
import { bdmLabel } from '../refresh/result';

/**
 * What a fleet refresh did, in lines an operator reads: the counts, then one line per selected
 * BDM (refreshed with its reasons, skipped with why, FAILED with what remains). The module
 * returns it as `summary`; the role prints it and the CLI renders it.
 */
export function fleetSummary(
  result: Pick<FleetRefreshResult, 'counts' | 'refreshed' | 'skips' | 'failures' | 'report_path'>,
  checkMode: boolean,
): string[] {
  const verb = checkMode ? 'would refresh' : 'refreshed';
  const { refreshed, skipped, failed } = result.counts;
  const named = bdmLabel;
  return [
    `${verb} ${refreshed}, skipped ${skipped}, failed ${failed}${checkMode ? ' (check mode: nothing was written)' : ''}`,
    ...result.refreshed.map(
      (e) =>
        `${verb}${e.online ? ' online' : ''}: ${named(e)} on ${e.host ?? 'no host'} [${e.cell}]: ${e.reasons.join(', ')}${e.new_attachment_id ? ` -> attachment ${e.new_attachment_id} (${e.seconds} s)` : ''}`,
    ),
    ...result.skips.map((e) => `skipped: ${named(e)}: ${e.why}`),
    // A failed refresh's msg may already end with what remains: said once.
    ...result.failures.map((e) => `FAILED: ${named(e)}: ${e.msg.endsWith(e.remains) ? e.msg : `${e.msg}; ${e.remains}`}`),
    ...(result.report_path ? [`full result: ${result.report_path}`] : []),
  ];
}
