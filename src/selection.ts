// Which BDMs an action works on: parsed once from the module options (args/selection.ts), then
// read by every action and by the fleet query. UUIDs are lowercase, as Nova stores them.

/** Exactly one BDM: by its uuid, or as nova-manage's volume_attachment names it (instance + volume). */
export type OneBdm = { bdmUuid: string } | { instanceUuid: string; volumeId: string };

/** One BDM, or every volume BDM of one instance. */
export type BdmRef = OneBdm | { instanceUuid: string };

/**
 * Many BDMs. A BDM is selected when it matches every filter given; `volumeAttachments` is one
 * filter that matches a BDM named by any of its entries (an OR of exact names, never crossed).
 */
export interface FleetFilters {
  /** Cell names or uuids. */
  cells?: string[];
  hosts?: string[];
  instanceUuids?: string[];
  volumeIds?: string[];
  bdmUuids?: string[];
  volumeAttachments?: BdmRef[];
  projectId?: string;
  /** Matched by the query on connection_info (JSON text): nova-db/audit-query.ts. */
  driverVolumeType?: string;
}

export type Selection =
  /** show and refresh: bdm_uuid, or instance_uuid with volume_id. */
  | { kind: 'bdm'; bdm: OneBdm }
  /** show: instance_uuid alone, every volume BDM of it. */
  | { kind: 'instance'; instanceUuid: string }
  /** audit and a fleet refresh: the filters (none given: an audit of every cell). */
  | { kind: 'fleet'; filters: FleetFilters }
  /** get_connector: the host it runs on, no BDM. */
  | { kind: 'this-host' };
