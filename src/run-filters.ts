import type { ModuleArgs } from './args/schema';
import type { AuditFilters } from './nova-db/audit-query';

/** The audit's filters from the module options, shared by audit and the fleet refresh (uuids compared lowercase). */
export function filtersOf(args: ModuleArgs): AuditFilters {
  return {
    hosts: args.hosts,
    instanceUuids: args.instance_uuids?.map((u) => u.toLowerCase()),
    volumeIds: args.volume_ids?.map((u) => u.toLowerCase()),
    bdmUuids: args.bdm_uuids?.map((u) => u.toLowerCase()),
    projectId: args.project_id,
    driverVolumeType: args.driver_volume_type,
  };
}
