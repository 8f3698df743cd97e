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
  const cinder = args.check_cinder ? await auditCinder(args, conf, scrubber) : undefined;
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
    onProgress: interactive ? writeProgress : undefined,
  });
}

/** check_cinder: a Cinder client (its secrets scrubbed) and how many of its GETs may run at once. */
async function auditCinder(
  args: ModuleArgs,
  conf: NovaConf,
  scrubber: TextScrubber,
): Promise<{ client: CinderClient; concurrency: number }> {
  // Loaded only here: a DB-only audit never pays for the HTTP stack.
  const [{ CinderClient, CinderSession }, { OpenStackHttp }, { cinderSecrets, cinderSettings }, { newAdminContext }] = await Promise.all([
    import('../cinder/cinder-client'),
    import('../cinder/http'),
    import('../cinder/cinder-settings'),
    import('../rpc/request-context'),
  ]);
  const settings = cinderSettings(conf, args.cinder_auth ?? {});
  for (const s of cinderSecrets(settings.cinder)) scrubber.add(s);
  const session = new CinderSession(new OpenStackHttp(settings.http), settings.cinder);
  return { client: new CinderClient(session, newAdminContext().requestId), concurrency: args.cinder_concurrency };
}

/** A live progress line on a terminal (the CLI); Ansible's stderr is never one. */
function writeProgress(p: { cellsDone: number; cells: number; scanned: number; stale: number }): void {
  const line = `${p.cellsDone}/${p.cells} cells done, ${p.scanned} BDMs scanned, ${p.stale} stale so far`;
  process.stderr.write(`\r${line}${p.cellsDone === p.cells ? '\n' : ''}`);
}
