import type { Kysely } from 'kysely';
import type { CellDatabase } from '../../src/nova-db/schema';
import type { FakeOpenStack } from './fake-openstack';

// The rule a refresh keeps at every moment, and after any failure: every volume BDM names an
// attachment Cinder has (or none: a legacy cinder v2 BDM). Nova 2023.2 and later delete a BDM
// that names an attachment Cinder lacks when the instance is next rebooted
// (nova/compute/manager.py _delete_dangling_bdms, commit 9d5935d007).

/** One line per volume BDM of these instances that names an attachment the stand-in Cinder does not have. */
export async function danglingBdms(db: Kysely<CellDatabase>, cloud: FakeOpenStack, instanceUuids: string[]): Promise<string[]> {
  if (instanceUuids.length === 0) return [];
  const ids = new Set(cloud.attachments.keys());
  const rows = await db
    .selectFrom('block_device_mapping')
    .select(['uuid', 'instance_uuid', 'attachment_id'])
    .where('instance_uuid', 'in', instanceUuids)
    .where('deleted', '=', 0)
    .where('destination_type', '=', 'volume')
    .execute();
  return rows
    .filter((r) => r.attachment_id !== null && !ids.has(r.attachment_id))
    .map((r) => `BDM ${r.uuid} of instance ${r.instance_uuid} names attachment ${r.attachment_id}, which Cinder does not have`);
}

/**
 * Checks the rule before every Cinder request while armed: the refresh waits for that request,
 * so its database writes are all in and the check sees a state between our writes. Only for a
 * single refresh at a time (a fleet's other instances move on meanwhile).
 */
export class DanglingBdmWatch {
  readonly seen: string[] = [];
  checks = 0;

  constructor(
    private readonly db: Kysely<CellDatabase>,
    private readonly cloud: FakeOpenStack,
    private readonly instanceUuids: string[],
  ) {
    cloud.beforeRequest = async (method, path) => {
      this.checks++;
      for (const p of await danglingBdms(this.db, this.cloud, this.instanceUuids)) this.seen.push(`before ${method} ${path}: ${p}`);
    };
  }

  /** Stops watching, checks the state left, and returns every dangling BDM seen. */
  async stop(): Promise<string[]> {
    this.cloud.beforeRequest = undefined;
    for (const p of await danglingBdms(this.db, this.cloud, this.instanceUuids)) this.seen.push(`at the end: ${p}`);
    return this.seen;
  }
}
