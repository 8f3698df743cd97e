import type { Connector } from '../../connector';
import type { ConnectionInfo } from './connection-info';

// Which BDMs of a running instance the online flow may refresh: only a volume QEMU serves
// itself, where nothing on the host holds the old connection. Then a new Cinder attachment, the
// BDM saved, and the old attachment deleted change nothing the guest uses, and no RPC is needed.
// Anything else is held by the host (a kernel session, a mapped device, a mount, an encryptor):
// its connection must be torn down and made again, which only the compute can do, with the
// instance stopped (docs/how-it-works.md).

export type OnlineBlockerCode =
  | 'iscsi'
  | 'fibre_channel'
  | 'nvmeof'
  | 'nfs'
  | 'other_backend'
  | 'local_attach_rbd'
  | 'encryption'
  | 'no_connection_info'
  | 'legacy_attachment';

export interface OnlineBlocker {
  code: OnlineBlockerCode;
  /** Names what the host holds, for skipped[].why and the single refresh's msg. */
  why: string;
}

export interface OnlineBdmFacts {
  attachment_id: string | null;
  /** The BDM's connection_info as stored: what the host connected. */
  info: ConnectionInfo | null;
  /** block_device_mapping.encrypted / encryption_secret_uuid, when read. */
  encrypted?: boolean | number | null;
  encryption_secret_uuid?: string | null;
  /** Cinder's connection_info of the BDM's attachment (flat form), when read. */
  cinderInfo?: Record<string, unknown> | null;
}

const HELD_BY_HOST: Record<string, { code: OnlineBlockerCode; holds: string }> = {
  iscsi: { code: 'iscsi', holds: 'an iSCSI session' },
  iser: { code: 'iscsi', holds: 'an iSCSI (iSER) session' },
  fibre_channel: { code: 'fibre_channel', holds: 'an FC (Fibre Channel) device' },
  nvmeof: { code: 'nvmeof', holds: 'an NVMe-oF controller' },
  nfs: { code: 'nfs', holds: 'an NFS mount' },
};

const STOP_FIRST = 'refresh it with the instance stopped';

/**
 * undefined when the online flow may refresh this BDM. `connector`: the host's, when known (the
 * refresh always knows it; the audit only when given connectors).
 */
export function onlineBlocker(bdm: OnlineBdmFacts, connector?: Pick<Connector, 'do_local_attach'>): OnlineBlocker | undefined {
  const info = bdm.info;
  if (!info || typeof info.driver_volume_type !== 'string') {
    return { code: 'no_connection_info', why: `the BDM has no connection_info, so what its host holds is unknown: ${STOP_FIRST}` };
  }
  const type = info.driver_volume_type;
  if (type !== 'rbd') {
    const held = HELD_BY_HOST[type];
    if (held) return { code: held.code, why: `its host holds ${held.holds} for the volume (driver_volume_type ${type}): ${STOP_FIRST}` };
    return {
      code: 'other_backend',
      why: `its host holds a ${type} connection for the volume (only rbd is refreshed online): ${STOP_FIRST}`,
    };
  }
  if (connector?.do_local_attach === true) {
    return {
      code: 'local_attach_rbd',
      why: `its host maps the rbd volume as a local block device (connector do_local_attach true), not QEMU: ${STOP_FIRST}`,
    };
  }
  if (isEncrypted(bdm)) {
    return { code: 'encryption', why: `the volume is encrypted: its host holds an encryptor or a libvirt secret for it: ${STOP_FIRST}` };
  }
  if (!bdm.attachment_id) {
    return {
      code: 'legacy_attachment',
      why: `the BDM has no Cinder v3 attachment (a legacy attach), which the online flow cannot replace: ${STOP_FIRST}`,
    };
  }
  return undefined;
}

/**
 * Nova's libvirt driver attaches an encryptor when connection_info.data.encrypted is true
 * (os_brick.encryptors.get_encryption_metadata, called by LibvirtDriver._attach_encryptor);
 * the BDM's own encryption fields and Cinder's flag count too.
 */
function isEncrypted(bdm: OnlineBdmFacts): boolean {
  const truthy = (v: unknown) => v === true || v === 1 || v === 'true' || v === 'True';
  return (
    truthy(bdm.encrypted) ||
    Boolean(bdm.encryption_secret_uuid) ||
    truthy(bdm.info?.data?.encrypted) ||
    truthy(bdm.info?.encrypted) ||
    truthy(bdm.cinderInfo?.encrypted)
  );
}
