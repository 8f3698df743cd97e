import type { ModuleArgs } from '../args/schema';
import { auditFleet, type AuditResult } from '../actions/audit/audit';
import type { CinderClient } from '../cinder/cinder-client';
import type { NovaConf } from '../config/nova-conf';
import type { NovaTopology } from '../nova-db/cells';
import type { TextScrubber } from '../output/scrub-text';
import type { FleetFilters } from '../selection';

// Wires the fleet audit: the cell databases always, Cinder only with check_cinder.

export async function runAudit(
  args: ModuleArgs,
  filters: FleetFilters,
  conf: NovaConf,
  topology: NovaTopology,
  scrubber: TextScrubber,
): Promise<AuditResult> {
  let cinder: { client: CinderClient; concurrency: number } | undefined;
  if (args.check_cinder) {
    // Loaded only here: a DB-only audit never pays for the HTTP stack.
    const [{ CinderClient, CinderSession }, { OpenStackHttp }, { cinderSecrets, cinderSettings }, { newAdminContext }] = await Promise.all([
      import('../cinder/cinder-client'),
      import('../cinder/http'),
      import('../cinder/cinder-settings'),
      import('../rpc/request-context'),
    ]);
    const settings = cinderSettings(conf, args.cinder_auth ?? {});
    for (const s of cinderSecrets(settings.cinder)) scrubber.add(s);
    cinder = { client: new CinderClient(new CinderSession(new OpenStackHttp(settings.http), settings.cinder), newAdminContext().requestId), concurrency: args.cinder_concurrency };
  }
  const interactive = process.stderr.isTTY === true;
  return auditFleet(topology, {
    filters,
    refuseLocked: args.refuse_locked,
    runningInstances: args.running_instances,
    expect: args.expect as Record<string, unknown> | undefined,
    cinder,
    reportPath: args.report_path,
    metricsPath: args.metrics_path,
    staleLimit: args.stale_limit,
    onProgress: interactive
      ? (p) => process.stderr.write(`\r${p.cellsDone}/${p.cells} cells done, ${p.scanned} BDMs scanned, ${p.stale} stale so far${p.cellsDone === p.cells ? '\n' : ''}`)
      : undefined,
  });
}
