import { randomUUID } from 'node:crypto';

/** nova.context.get_admin_context(): what nova-manage acts as. One per phase (lock, refresh, unlock). */
export interface AdminContext {
  requestId: string;
  /** Creation time: start_time/updated_at of the instance action, and _context_timestamp. */
  timestamp: Date;
}

export function newAdminContext(): AdminContext {
  return { requestId: `req-${randomUUID()}`, timestamp: new Date() };
}

/** "%Y-%m-%dT%H:%M:%S.%f" in UTC, no Z (oslo.context). */
function contextTimestamp(d: Date): string {
  return `${d.toISOString().slice(0, 23)}000`;
}

/** RequestContext.to_dict() of an admin context; oslo prefixes each key with `_context_`. */
export function contextDict(ctx: AdminContext): Record<string, unknown> {
  return {
    user: null,
    project_id: null,
    system_scope: null,
    project: null,
    domain: null,
    user_domain: null,
    project_domain: null,
    is_admin: true,
    read_only: false,
    show_deleted: false,
    auth_token: null,
    request_id: ctx.requestId,
    global_request_id: null,
    resource_uuid: null,
    roles: [],
    user_identity: '- - - - -',
    is_admin_project: true,
    user_id: null,
    read_deleted: 'no',
    remote_address: null,
    timestamp: contextTimestamp(ctx.timestamp),
    quota_class: null,
    user_name: null,
    service_catalog: [],
    project_name: null,
  };
}
