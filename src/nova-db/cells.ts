import { formatCellUrl } from '../config/cell-url-template';
import { parseSqlalchemyUrl } from '../config/sqlalchemy-url';
import { BadInput, InstanceNotFound } from '../errors';
import { NovaDatabase } from './connect';
import type { ApiDatabase, CellDatabase } from './schema';
import { cellLabel } from '../cell-label';

export interface Cell {
  id: number;
  uuid: string;
  name: string | null;
  /** Filled from the local [database] connection when stored as a template. */
  databaseConnection: string | null;
  /** Filled from the local [DEFAULT] transport_url when stored as a template. */
  transportUrl: string | null;
  disabled: boolean;
}

export interface NovaTopologyOptions {
  apiConnection: string;
  /** This host's [database] connection: fills templated cell URLs. */
  localDatabaseConnection?: string;
  /** This host's [DEFAULT] transport_url: fills templated cell URLs. */
  localTransportUrl?: string;
  connectTimeoutSeconds: number;
  /** Connections per cell database (default 2); a fleet refresh uses one per instance in flight. */
  cellConnectionLimit?: number;
}

/**
 * The API database and the cell databases it maps to, opened lazily, one pool each.
 * Routing follows nova: instance_mappings -> cell_mappings -> the (formatted) cell URL.
 */
export class NovaTopology {
  readonly api: NovaDatabase<ApiDatabase>;
  private readonly cellDbs = new Map<string, NovaDatabase<CellDatabase>>();

  constructor(private readonly options: NovaTopologyOptions) {
    this.api = new NovaDatabase<ApiDatabase>(
      'API database',
      parseSqlalchemyUrl(options.apiConnection, '[api_database] connection'),
      options.connectTimeoutSeconds,
    );
  }

  async listCells(): Promise<Cell[]> {
    const rows = await this.api.run((db) => db.selectFrom('cell_mappings').selectAll().orderBy('id').execute());
    return rows.map((r) => this.toCell(r));
  }

  /** The cell an instance lives in; InstanceNotFound when it has no mapping or no cell yet. */
  async cellOfInstance(instanceUuid: string): Promise<Cell> {
    const row = await this.api.run((db) =>
      db
        .selectFrom('instance_mappings')
        .leftJoin('cell_mappings', 'cell_mappings.id', 'instance_mappings.cell_id')
        .select([
          'instance_mappings.cell_id as mapped_cell_id',
          'cell_mappings.id',
          'cell_mappings.uuid',
          'cell_mappings.name',
          'cell_mappings.transport_url',
          'cell_mappings.database_connection',
          'cell_mappings.disabled',
        ])
        .where('instance_mappings.instance_uuid', '=', instanceUuid)
        .limit(1)
        .executeTakeFirst(),
    );
    if (!row) throw new InstanceNotFound(`Instance ${instanceUuid} has no mapping to a cell.`);
    if (row.mapped_cell_id === null || row.id === null || row.uuid === null) {
      throw new InstanceNotFound(`Instance ${instanceUuid} is not mapped to a cell yet (it is still being scheduled).`);
    }
    return this.toCell({ ...row, id: row.id, uuid: row.uuid });
  }

  /** The cell's database, opened on first use and reused after. */
  cellDatabase(cell: Cell): NovaDatabase<CellDatabase> {
    let db = this.cellDbs.get(cell.uuid);
    if (!db) {
      const label = `${cellLabel(cell)} database`;
      if (!cell.databaseConnection) throw new BadInput(`cell ${cellLabel(cell)} has no database_connection in cell_mappings`);
      db = new NovaDatabase<CellDatabase>(
        label,
        parseSqlalchemyUrl(cell.databaseConnection, `database_connection of cell ${cellLabel(cell)}`),
        this.options.connectTimeoutSeconds,
        this.options.cellConnectionLimit,
      );
      this.cellDbs.set(cell.uuid, db);
    }
    return db;
  }

  /** Closes every pool; safe to call more than once. */
  async close(): Promise<void> {
    await Promise.all([this.api.close(), ...[...this.cellDbs.values()].map((db) => db.close())]);
  }

  private toCell(r: {
    id: number;
    uuid: string;
    name: string | null;
    transport_url: string | null;
    database_connection: string | null;
    disabled: number | null;
  }): Cell {
    return {
      id: r.id,
      uuid: r.uuid,
      name: r.name,
      databaseConnection:
        r.database_connection === null ? null : formatCellUrl(r.database_connection, this.options.localDatabaseConnection),
      transportUrl: r.transport_url === null ? null : formatCellUrl(r.transport_url, this.options.localTransportUrl),
      disabled: Boolean(r.disabled),
    };
  }
}
