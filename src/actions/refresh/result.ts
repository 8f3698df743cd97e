import { RefreshFailed, type RefreshAftermath } from '../../errors';
import type { Cell } from '../../nova-db/cells';
import type { BdmRecord } from '../../nova-db/records';
import { maskSecrets } from '../../output/mask-secrets';
import type { Recovery } from './reconcile';
import { stillMismatchedMessage, type StaleReason } from '../rules/staleness';
import type { StepEntry } from '../shared/step-log';
import { cellLabel } from '../../cell-label';

// The typed results of a single refresh (as bdm.yml's RETURN documents them), built in one place.

export type CellRef = { uuid: string; name: string | null };

export type BdmSummary = {
  bdm_uuid: string;
  instance_uuid: string;
  volume_id: string;
  host: string | null;
  cell: CellRef;
};

export type ConnectionInfoDiff = { before_header: string; after_header: string; before: string; after: string };

type Common = BdmSummary & {
  msg: string;
  stale: boolean;
  stale_reasons: StaleReason[];
  connection_info: unknown;
  steps: StepEntry[];
  warnings?: string[];
};

/** Not stale: nothing done (changed only when an interrupted refresh was recovered). */
export type NotStaleResult = Common & { changed: boolean; attachment_id: string | null; recovered?: Recovery };

/** Check mode: what a real run would do. */
export type WouldRefreshResult = Common & {
  changed: true;
  old_attachment_id: string | null;
  /** null when it would be refreshed online (no RPC). */
  rpc_version: string | null;
  /** The instance is running: the BDM would be refreshed online (running_instances: online). */
  online?: true;
  interrupted_refresh?: true;
  diff?: ConnectionInfoDiff;
};

export type RefreshedResult = Common & {
  changed: true;
  /** Refreshed, but Cinder still hands out what expect says it must not be, or the instance could not be unlocked. */
  failed?: true;
  /** Set with failed when the instance is still locked. */
  remains?: string;
  old_attachment_id: string | null;
  new_attachment_id: string;
  attachment_id: string;
  /** null when refreshed online (no RPC). */
  rpc_version: string | null;
  /** Refreshed online, the instance running: `steps` holds attachment_create, attachment_complete, bdm_save, attachment_delete. */
  online?: true;
  request_ids: { lock: string; refresh: string };
  recovered?: Recovery;
  diff?: ConnectionInfoDiff;
};

export type SingleRefreshResult = NotStaleResult | WouldRefreshResult | RefreshedResult;

/** A single refresh's failure: which BDM, what ran, what was undone and what remains (the keys the module returns). */
export type RefreshFailure = BdmSummary &
  RefreshAftermath & {
    steps: StepEntry[];
    request_ids: { lock: string; refresh: string };
    warnings?: string[];
  };

export class BdmRefreshFailed extends RefreshFailed {
  constructor(
    message: string,
    override readonly details: RefreshFailure,
    causeError?: Error,
  ) {
    super(message, details, causeError);
  }
}

/** Which BDM a result speaks of: the BDM, its instance and volume, the instance's compute host, the cell. */
export function summaryOf(bdm: BdmRecord, host: string | null, cell: Cell): BdmSummary {
  return {
    bdm_uuid: bdm.uuid!,
    instance_uuid: bdm.instance_uuid!,
    volume_id: bdm.volume_id!,
    host,
    cell: { uuid: cell.uuid, name: cell.name },
  };
}

/** The same for one entry of a list (a fleet refresh's): the cell by its name (its uuid if it has none). */
export function listItemOf(bdm: BdmRecord, host: string | null, cell: Cell): Omit<BdmSummary, 'cell'> & { cell: string } {
  return { ...summaryOf(bdm, host, cell), cell: cellLabel(cell) };
}

/** How a message names a BDM: "BDM X (instance Y, volume Z)". */
export function bdmLabel(s: Pick<BdmSummary, 'bdm_uuid' | 'instance_uuid' | 'volume_id'>): string {
  return `BDM ${s.bdm_uuid} (instance ${s.instance_uuid}, volume ${s.volume_id})`;
}

export function masker(revealSecrets: boolean): (v: unknown) => unknown {
  return (v) => (revealSecrets ? v : maskSecrets(v));
}

export function connectionInfoDiff(s: BdmSummary, before: unknown, after: unknown): ConnectionInfoDiff {
  const name = `${bdmLabel(s)} connection_info`;
  return {
    before_header: `${name} (before)`,
    after_header: `${name} (after)`,
    before: `${JSON.stringify(before, null, 2)}\n`,
    after: `${JSON.stringify(after, null, 2)}\n`,
  };
}

type Extras = { steps: StepEntry[]; warnings: string[] };

function common(summary: BdmSummary, msg: string, reasons: StaleReason[], info: unknown, extras: Extras): Common {
  return {
    msg,
    ...summary,
    stale: reasons.length > 0,
    stale_reasons: reasons,
    connection_info: info,
    steps: extras.steps,
    ...(extras.warnings.length ? { warnings: extras.warnings } : {}),
  };
}

export const buildResult = {
  notStale(summary: BdmSummary, attachmentId: string | null, info: unknown, extras: Extras & { recovered?: Recovery }): NotStaleResult {
    return {
      changed: extras.recovered !== undefined,
      ...common(summary, `BDM ${summary.bdm_uuid} is not stale; nothing to do (force: true refreshes anyway)`, [], info, extras),
      attachment_id: attachmentId,
      ...(extras.recovered ? { recovered: extras.recovered } : {}),
    };
  },

  wouldRefresh(
    summary: BdmSummary,
    p: {
      reasons: StaleReason[];
      oldAttachmentId: string | null;
      info: unknown;
      rpcVersion: string | null;
      online: boolean;
      interrupted: boolean;
      diff?: ConnectionInfoDiff;
    },
    extras: Extras,
  ): WouldRefreshResult {
    const why = p.reasons.length
      ? ` (${p.reasons.map((r) => r.code).join(', ')})`
      : p.interrupted
        ? ' (recovering an interrupted refresh first)'
        : ' (forced)';
    const how = p.online ? ' online, the instance running' : '';
    return {
      changed: true,
      ...common(summary, `would refresh the connection_info of BDM ${summary.bdm_uuid}${how}${why}`, p.reasons, p.info, extras),
      old_attachment_id: p.oldAttachmentId,
      rpc_version: p.rpcVersion,
      ...(p.online ? { online: true as const } : {}),
      ...(p.interrupted ? { interrupted_refresh: true as const } : {}),
      ...(p.diff ? { diff: p.diff } : {}),
    };
  },

  refreshed(
    summary: BdmSummary,
    p: {
      reasons: StaleReason[];
      oldAttachmentId: string | null;
      newAttachmentId: string;
      info: unknown;
      rpcVersion: string | null;
      online: boolean;
      requestIds: { lock: string; refresh: string };
      recovered?: Recovery;
      diff?: ConnectionInfoDiff;
      /** expect still not met by what Cinder handed out (a one-line detail, secret-free). */
      stillWrong?: string;
    },
    extras: Extras,
  ): RefreshedResult {
    const msg = p.stillWrong
      ? `refreshed BDM ${summary.bdm_uuid}, but ${stillMismatchedMessage(p.stillWrong)}. ` +
        `Cinder handed out: ${JSON.stringify(maskSecrets(p.info))}`
      : `refreshed the connection_info of BDM ${summary.bdm_uuid}${p.online ? ' online, the instance running' : ''}`;
    return {
      changed: true,
      ...(p.stillWrong ? { failed: true as const } : {}),
      ...common(summary, msg, p.reasons, p.info, extras),
      old_attachment_id: p.oldAttachmentId,
      new_attachment_id: p.newAttachmentId,
      attachment_id: p.newAttachmentId,
      rpc_version: p.rpcVersion,
      ...(p.online ? { online: true as const } : {}),
      request_ids: p.requestIds,
      ...(p.recovered ? { recovered: p.recovered } : {}),
      ...(p.diff ? { diff: p.diff } : {}),
    };
  },
};

/**
 * A refresh that failed after it began writing: what was undone and what remains (RefreshFailed's
 * details); the single form adds which BDM, the steps that ran, its request ids and warnings.
 */
export type RefreshFailureReport = { undone: string[]; remains: string } & Partial<
  BdmSummary & { steps: StepEntry[]; request_ids: { lock: string; refresh: string }; warnings: string[] }
>;
