import { BdmNotFound, InstanceNotFound } from '../errors';

/** nova-manage volume_attachment show's exit codes: 2 instance not found, 3 BDM not found, 1 anything else. */
export function exitCodeFor(error: Error | undefined): number {
  if (error instanceof InstanceNotFound) return 2;
  if (error instanceof BdmNotFound) return 3;
  return 1;
}
