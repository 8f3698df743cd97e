import { PreconditionFailed } from '../../errors';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import { computeNodesOf, computeServiceOf, databaseNow, minimumComputeVersion } from '../../nova-db/refresh-reads';
import { naiveUtcToDate } from '../../naive-utc';
import {
  capFromMinimumServiceVersion,
  capFromPin,
  computeTopic,
  removeVolumeConnectionVersion,
  type ComputeTopic,
} from '../../rpc/compute-rpc-version';
import { cellLabel } from '../../cell-label';

// What refresh checks about the compute host before it writes anything (the instance's own
// state is refreshable.ts's rule), each with its own message.

/** libvirt's hypervisor_type values for its QEMU/KVM drivers. */
const LIBVIRT_HYPERVISOR_TYPES = new Set(['qemu', 'kvm']);

/** The nova-compute service of the host is up (servicegroup DB driver rules) and runs libvirt. */
export async function checkCompute(
  topology: NovaTopology,
  cell: Cell,
  host: string,
  options: { serviceDownTimeSeconds: number; requireLibvirt: boolean },
): Promise<{ hypervisorTypes: string[] }> {
  const db = topology.cellDatabase(cell);
  const [service, nodes, now] = await Promise.all([computeServiceOf(db, host), computeNodesOf(db, host), databaseNow(db)]);
  if (!service) throw new PreconditionFailed(`no nova-compute service is registered for host ${host} in ${cellLabel(cell)}`);
  if (service.forced_down) throw new PreconditionFailed(`the nova-compute service on ${host} is forced down`);
  const lastSeen = service.last_seen_up ?? service.updated_at ?? service.created_at;
  const ageSeconds = lastSeen ? (now.getTime() - naiveUtcToDate(lastSeen).getTime()) / 1000 : Infinity;
  if (ageSeconds > options.serviceDownTimeSeconds) {
    throw new PreconditionFailed(
      `the nova-compute service on ${host} is down: last heartbeat ${lastSeen ? `${Math.round(ageSeconds)} s ago` : 'never'} (service_down_time ${options.serviceDownTimeSeconds} s)`,
    );
  }
  const types = nodes.map((n) => n.hypervisor_type);
  if (options.requireLibvirt) {
    if (types.length === 0)
      throw new PreconditionFailed(
        `host ${host} has no compute node record, so its hypervisor cannot be checked (require_libvirt: false skips this)`,
      );
    const other = types.filter((t) => !LIBVIRT_HYPERVISOR_TYPES.has(t.toLowerCase()));
    if (other.length > 0) {
      throw new PreconditionFailed(
        `host ${host} runs hypervisor ${other.join(', ')}, not libvirt QEMU/KVM: refresh is only supported there (require_libvirt: false to try anyway, at your own risk)`,
      );
    }
  }
  return { hypervisorTypes: types };
}

/** How remove_volume_connection is sent: its version and the compute's topic. */
export interface ComputeRoute {
  version: string;
  topic: ComputeTopic;
}

/** The version and topic of remove_volume_connection, chosen like nova ([upgrade_levels] compute). */
export async function chooseComputeRoute(topology: NovaTopology, upgradeLevel: string | undefined): Promise<ComputeRoute> {
  const cap = await capOf(topology, upgradeLevel);
  return { version: removeVolumeConnectionVersion(cap), topic: computeTopic(cap) };
}

async function capOf(topology: NovaTopology, upgradeLevel: string | undefined): Promise<string | null> {
  if (upgradeLevel?.toLowerCase() !== 'auto') return capFromPin(upgradeLevel);
  const cells = await topology.listCells();
  const minima = await Promise.all(
    cells.map((cell) => minimumComputeVersion(topology.cellDatabase(cell)).catch(() => null)), // nova ignores cells that fail
  );
  const positive = minima.filter((v): v is number => v !== null && v > 0);
  return capFromMinimumServiceVersion(positive.length ? Math.min(...positive) : 0);
}
