// Errors the tool expects and explains. Anything else is "unexpected" (CLI exit code 1).
// Messages are one line, written for an operator, and never carry a secret.

export class NovaBdmError extends Error {
  override name = 'NovaBdmError';
}

/** Arguments, config file or connector input the user must fix. */
export class BadInput extends NovaBdmError {
  override name = 'BadInput';
}

/** The instance has no cell mapping, or no live row in its cell (nova-manage exit code 2). */
export class InstanceNotFound extends NovaBdmError {
  override name = 'InstanceNotFound';
}

/** No live volume BDM matches the selector (nova-manage exit code 3). */
export class BdmNotFound extends NovaBdmError {
  override name = 'BdmNotFound';
}

/** A database could not be reached or refused us. */
export class DatabaseUnavailable extends NovaBdmError {
  override name = 'DatabaseUnavailable';
}

/** The connection broke after it was made: a write in flight may or may not have been committed. */
export class DatabaseConnectionLost extends DatabaseUnavailable {
  override name = 'DatabaseConnectionLost';
}

/** The data in Nova's databases contradicts itself (e.g. one BDM uuid live in two cells). */
export class InconsistentData extends NovaBdmError {
  override name = 'InconsistentData';
}

/** The instance is not in a state refresh accepts (nova-manage exit code 5). */
export class InstanceStateInvalid extends NovaBdmError {
  override name = 'InstanceStateInvalid';
}

/** connector_path does not exist (nova-manage exit code 2). */
export class ConnectorMissing extends NovaBdmError {
  override name = 'ConnectorMissing';
}

/** connector_path cannot be read or is not a valid connector (nova-manage exit code 3). */
export class ConnectorUnreadable extends NovaBdmError {
  override name = 'ConnectorUnreadable';
}

/** Something outside the instance blocks a refresh: the compute is down, not libvirt, not listening. */
export class PreconditionFailed extends NovaBdmError {
  override name = 'PreconditionFailed';
}

/** What a failed refresh left: what it undid, and what remains for the operator. */
export interface RefreshAftermath {
  undone: string[];
  remains: string;
  /** The online flow's steps that were done before it failed (refresh/online.ts ONLINE_STEPS). */
  steps_done?: string[];
}

/** A refresh failed after it began writing; `details` says what was undone and what remains. */
export class RefreshFailed extends NovaBdmError {
  override name = 'RefreshFailed';
  constructor(
    message: string,
    readonly details: RefreshAftermath,
    readonly causeError?: Error,
  ) {
    super(message);
  }
}

/** The connector is another host's (nova's HostConflict, bug 2012365: nova-manage exit code 7). */
export class HostConflict extends NovaBdmError {
  override name = 'HostConflict';
}

/** A BDM of a running instance that the online flow cannot refresh; `code` says what its host holds. */
export class NotRefreshableOnline extends InstanceStateInvalid {
  override name = 'NotRefreshableOnline';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** Another refresh (another controller, or another run here) holds the instance right now. */
export class LockedByAnotherRefresh extends InstanceStateInvalid {
  override name = 'LockedByAnotherRefresh';
}

/** The instance changed between the check and the lock; `why` says how (the refreshable rule's words). */
export class InstanceChanged extends InstanceStateInvalid {
  override name = 'InstanceChanged';
  constructor(
    message: string,
    readonly why: string,
  ) {
    super(message);
  }
}
