import { cinderAttachments, cinderVolume, dumpNovaRows, type CinderAttachment, type NovaRows, type Seeded } from '../harness';

// What a fault may leave behind, read from the real Nova DB and the real Cinder API, and the
// rules every state must keep: the BDM points at an attachment that exists, with connection_info
// built from it or cleared (the documented last resort); an instance stays locked only by our
// own interrupted refresh, which the next run recovers.

export interface Snapshot {
  nova: NovaRows;
  attachments: CinderAttachment[];
  volumeStatus: string;
}

export async function snapshot(twin: Seeded): Promise<Snapshot> {
  const [nova, attachments, volume] = await Promise.all([
    dumpNovaRows(twin.instance_uuid),
    cinderAttachments(twin.volume_id),
    cinderVolume(twin.volume_id),
  ]);
  return { nova, attachments, volumeStatus: volume.status };
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Problems with the BDM against Cinder (empty when consistent). */
export function bdmProblems(twin: Seeded, s: Snapshot): string[] {
  const problems: string[] = [];
  const bdm = s.nova.block_device_mapping[0];
  if (!bdm || s.nova.block_device_mapping.length !== 1) return [`expected 1 volume BDM, found ${s.nova.block_device_mapping.length}`];
  const attachment = s.attachments.find((a) => a.id === bdm.attachment_id);
  if (!attachment) return [`the BDM points at attachment ${bdm.attachment_id}, which Cinder does not have`];
  if (bdm.connection_info === null) return problems; // cleared: the documented last resort
  const info = bdm.connection_info as Record<string, unknown>;
  const raw = attachment.connection_info;
  if (!isObject(raw) || Object.keys(raw).length === 0) {
    problems.push(`the BDM has connection_info but its attachment ${attachment.id} (${attachment.status}) has none`);
    return problems;
  }
  if (info.serial !== twin.volume_id) problems.push(`connection_info.serial is ${String(info.serial)}`);
  if (info.driver_volume_type !== raw.driver_volume_type)
    problems.push(`driver_volume_type ${String(info.driver_volume_type)} != Cinder's ${String(raw.driver_volume_type)}`);
  const { attachment_id: _a, driver_volume_type: _d, ...expected } = raw;
  void _a;
  void _d;
  const data = isObject(info.data) ? info.data : {};
  for (const [k, v] of Object.entries(expected)) {
    if (JSON.stringify(data[k]) !== JSON.stringify(v)) problems.push(`connection_info.data.${k} differs from the attachment's`);
  }
  return problems;
}

/**
 * The rule at every moment of a refresh and after any failure, locked or not, clean-up failed
 * or not: every volume BDM names an attachment Cinder has, or none (a legacy BDM). Nova 2023.2
 * and later delete a BDM naming an attachment Cinder lacks at the instance's next reboot
 * (nova/compute/manager.py _delete_dangling_bdms).
 */
export function danglingBdmProblems(s: Snapshot): string[] {
  const ids = new Set(s.attachments.map((a) => a.id));
  return s.nova.block_device_mapping
    .filter((b) => b.attachment_id !== null && !ids.has(b.attachment_id))
    .map((b) => `the BDM names attachment ${b.attachment_id}, which Cinder does not have (Nova would delete the BDM at the next reboot)`);
}

/**
 * The rules for the state a failed first run leaves. `cleanupFailed`: the run said its own
 * clean-up failed and to run refresh again; the BDM may then point at an attachment that is gone.
 */
export function interimProblems(twin: Seeded, s: Snapshot, reason: string, cleanupFailed = false): string[] {
  const problems: string[] = [];
  const inst = s.nova.instance;
  const lockedReason = s.nova.system_metadata.find((m) => m.key === 'locked_reason')?.value;
  if (!inst) return ['the instance row is gone'];
  if (inst.locked) {
    if (lockedReason !== reason)
      problems.push(`the instance is locked (by ${inst.locked_by}, reason ${lockedReason}) but not by our refresh`);
    return problems; // our lock: the next refresh of this BDM recovers whatever is left
  }
  if (lockedReason !== undefined) problems.push(`unlocked, but locked_reason ${lockedReason} is left`);
  if (!cleanupFailed) problems.push(...bdmProblems(twin, s));
  return problems;
}

/**
 * The rules after the re-run: unlocked, refreshed, exactly one attachment (the BDM's), attached;
 * the instance in `vmState` (active for a running guest refreshed online), with no task.
 */
export function finalProblems(twin: Seeded, s: Snapshot, actionsBefore: number, vmState: 'stopped' | 'active' = 'stopped'): string[] {
  const problems: string[] = [];
  const inst = s.nova.instance;
  if (!inst || inst.locked || inst.locked_by !== null) problems.push(`instance locked=${inst?.locked} locked_by=${inst?.locked_by}`);
  if (inst && (inst.vm_state !== vmState || inst.task_state !== null))
    problems.push(`vm_state ${inst.vm_state} task_state ${inst.task_state}`);
  if (s.nova.system_metadata.some((m) => m.key === 'locked_reason')) problems.push('locked_reason left in system_metadata');
  const bdm = s.nova.block_device_mapping[0];
  if (!bdm?.connection_info) problems.push('the BDM has no connection_info');
  problems.push(...bdmProblems(twin, s));
  if (s.attachments.length !== 1)
    problems.push(
      `the volume has ${s.attachments.length} attachments (${s.attachments.map((a) => `${a.id.slice(0, 8)}:${a.status}`).join(', ')})`,
    );
  else if (s.attachments[0]!.status !== 'attached') problems.push(`its attachment is ${s.attachments[0]!.status}`);
  if (s.volumeStatus !== 'in-use') problems.push(`the volume is ${s.volumeStatus}`);
  const actions = s.nova.instance_actions.slice(actionsBefore).filter((a) => a.action === 'refresh_volume_attachment');
  for (const a of actions) if (!a.finish_time) problems.push(`refresh action ${a.request_id} is not finished`);
  return problems;
}

/** This case's refresh actions: finished, the failed ones with message Error and an Error event. */
export function failedActionProblems(s: Snapshot, actionsBefore: number): string[] {
  const problems: string[] = [];
  for (const a of s.nova.instance_actions.slice(actionsBefore).filter((x) => x.action === 'refresh_volume_attachment')) {
    if (!a.finish_time) continue; // checked after the re-run (recovery finishes it)
    const errorEvent = a.events.find((e) => e.event === 'nova_bdm_refresh' && e.result === 'Error');
    if (a.message === 'Error' && !errorEvent) problems.push(`action ${a.request_id} is Error without an error event`);
  }
  return problems;
}
