import { readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { hostname, machine, networkInterfaces, platform } from 'node:os';
import { join } from 'node:path';
import type { NovaConf } from './nova-conf';
import { readRegularTextFile } from './read-file';

// The connector a compute host's libvirt driver hands Cinder, the way os-brick 6.1's
// get_connector_properties builds it (openstack/os-brick os_brick/initiator/connector.py),
// read from the host's files. `root` lets tests point it at a fake tree. A source that is
// missing is left out, never guessed.

function read(root: string, path: string): string | undefined {
  try {
    return readRegularTextFile(join(root, path), 1024 * 1024).trim(); // a FIFO in the tree must not hang us
  } catch {
    return undefined;
  }
}

function list(root: string, path: string): string[] {
  try {
    return readdirSync(join(root, path)).sort();
  } catch {
    return [];
  }
}

/** First non-internal IPv4 address: what nova's my_ip default finds on most hosts. */
function defaultIp(): string | undefined {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function multipathdRunning(root: string): boolean {
  return list(root, 'proc').some((pid) => /^\d+$/.test(pid) && read(root, `proc/${pid}/comm`) === 'multipathd');
}

/** The UUID of the filesystem mounted at / (os-brick: findmnt + blkid), from /dev/disk/by-uuid. */
function rootFilesystemUuid(root: string): string | undefined {
  const mounts = read(root, 'proc/mounts');
  const device = mounts
    ?.split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[1] === '/' && f[0]?.startsWith('/dev/'))?.[0];
  if (!device) return undefined;
  let target: string;
  try {
    target = realpathSync(join(root, device));
  } catch {
    return undefined;
  }
  for (const uuid of list(root, 'dev/disk/by-uuid')) {
    try {
      const link = readlinkSync(join(root, 'dev/disk/by-uuid', uuid));
      // An absolute link (/dev/vda1) is inside the host tree too.
      if (realpathSync(link.startsWith('/') ? join(root, link) : join(root, 'dev/disk/by-uuid', link)) === target) return uuid;
    } catch {
      // a dangling link: not ours
    }
  }
  return undefined;
}

/** [libvirt] volume_use_multipath. */
export function wantsMultipath(conf: NovaConf): boolean {
  return conf.getBool('libvirt', 'volume_use_multipath', false);
}

export interface HostProbes {
  /** A LightOS discovery client answers on the host (os-brick's found_dsc). */
  lightosDiscoveryClient: boolean;
}

/** os-brick's get_connector_properties as this host reports it (keys in os-brick's order). */
export interface HostConnector {
  platform: string;
  os_type: string;
  ip?: string;
  host: string;
  multipath?: boolean;
  initiator?: string;
  wwpns?: string[];
  wwnns?: string[];
  nqn?: string;
  /** 'found' when a LightOS discovery client answers, else ''. */
  found_dsc?: string;
  uuid?: string;
  'system uuid'?: string;
  nvme_native_multipath?: boolean;
  do_local_attach?: boolean;
}

export function hostConnector(conf: NovaConf, root = '/', probes: HostProbes = { lightosDiscoveryClient: false }): HostConnector {
  const connector: HostConnector = {
    platform: machine(),
    os_type: platform(),
    ip: conf.get('DEFAULT', 'my_block_storage_ip') ?? conf.get('DEFAULT', 'my_ip') ?? defaultIp(),
    host: conf.get('DEFAULT', 'host') ?? hostname(),
  };
  if (connector.ip === undefined) delete connector.ip;
  connector.multipath = wantsMultipath(conf) && multipathdRunning(root);
  const initiator = read(root, 'etc/iscsi/initiatorname.iscsi')
    ?.split('\n')
    .find((l) => l.startsWith('InitiatorName='))
    ?.slice('InitiatorName='.length)
    .trim();
  if (initiator) connector.initiator = initiator;
  const fcHosts = list(root, 'sys/class/fc_host');
  const fc = (file: string) =>
    fcHosts.map((h) => read(root, `sys/class/fc_host/${h}/${file}`)?.replace(/^0x/, '')).filter((v): v is string => !!v);
  if (fc('port_name').length) connector.wwpns = fc('port_name');
  if (fc('node_name').length) connector.wwnns = fc('node_name');
  const nqn = read(root, 'etc/nvme/hostnqn');
  if (nqn) {
    connector.nqn = nqn;
    // os-brick's LightOS connector adds it whenever the host has an NQN.
    connector.found_dsc = probes.lightosDiscoveryClient ? 'found' : '';
  }
  const fsUuid = rootFilesystemUuid(root);
  if (fsUuid) connector.uuid = fsUuid;
  const systemUuid = read(root, 'sys/class/dmi/id/product_uuid');
  if (systemUuid) connector['system uuid'] = systemUuid.toLowerCase();
  // Always there, false without the nvme_core module (os-brick's NVMe-oF connector).
  connector.nvme_native_multipath = read(root, 'sys/module/nvme_core/parameters/multipath') === 'Y';
  connector.do_local_attach = false;
  return connector;
}
