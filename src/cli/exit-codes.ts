import { BdmNotFound, ConnectorMissing, ConnectorUnreadable, HostConflict, InstanceNotFound, InstanceStateInvalid } from '../errors';

/**
 * nova-manage volume_attachment's exit codes. show: 2 instance not found, 3 BDM not found.
 * refresh: 2 connector path missing, 3 connector unreadable, 4 instance not found,
 * 5 instance state invalid, 6 volume not attached, 7 connector host is not the instance's host.
 * 1 for anything else.
 */
export function exitCodeFor(error: Error | undefined, action: string): number {
  if (action === 'refresh') {
    if (error instanceof ConnectorMissing) return 2;
    if (error instanceof ConnectorUnreadable) return 3;
    if (error instanceof InstanceNotFound) return 4;
    if (error instanceof InstanceStateInvalid) return 5;
    if (error instanceof BdmNotFound) return 6;
    if (error instanceof HostConflict) return 7;
    return 1;
  }
  if (error instanceof InstanceNotFound) return 2;
  if (error instanceof BdmNotFound) return 3;
  return 1;
}
