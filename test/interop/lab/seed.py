#!/usr/bin/python3
"""Seed the lab: a REAL Cinder volume attached (Cinder v3 attachment flow, or
the legacy v2 flow) to a nova instance record in cell1 on compute1.

Run with /usr/bin/python3 (Debian's; nova/cinderclient live there), after up.sh,
with the same OPENSTACK_LAB_DIR (default /var/tmp/nova-bdm-interop):
  /usr/bin/python3 seed.py [--legacy] [--stale] [--count N]
                           [--vm-state stopped|active] [--locked] [--no-attach]
                           [--backend fake|rbd] [--host compute1|compute2] [--boot-from-volume]
Prints a JSON list: [{"instance_uuid", "volume_id", "bdm_uuid", "attachment_id", ...}]

Ceph flavour (OPENSTACK_LAB_CEPH=1 up.sh): --backend rbd makes the volume of type 'rbd'
(Cinder's RBDDriver, so connection_info is driver_volume_type rbd, data.hosts/ports of the
mon, auth_username cinder, secret_uuid, name volumes/volume-<id>); --host compute2 puts the
instance on the libvirt compute (node = compute2's compute_nodes.hypervisor_hostname, which
the libvirt driver takes from the machine's hostname); --boot-from-volume makes that volume
the root disk (BDM /dev/vda, boot_index 0, no image BDM, image_ref ''), the only layout
compute2 can start (tools/start_instance.py). --stale with --backend rbd stores
data.hosts ['127.0.0.254'] (loopback, nothing listens there) instead of the iSCSI keys.

The instance row is written with nova's own versioned objects (Instance.create,
InstanceMapping.create, BlockDeviceMapping.create) against the lab's DBs, so
instance_extra / info_cache / system_metadata look like nova wrote them.
"""
import argparse
import copy
import json
import os
import sys
import uuid as uuidlib

from oslo_utils import timeutils

sys.dont_write_bytecode = True  # the script folder is read-only
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tools'))
from common import S, cinder, wait_volume  # noqa: E402

# What a libvirt compute (os-brick get_connector_properties) would hand Cinder
# for compute1; nova.volume.cinder.API.attachment_update adds 'mountpoint'.
CONNECTOR = {
    'platform': 'x86_64', 'os_type': 'linux', 'ip': '127.0.0.1',
    'host': 'compute1', 'multipath': False,
    'initiator': 'iqn.2004-10.com.ubuntu:01:labcompute1',
    'do_local_attach': False, 'system uuid': '4c4c4544-0000-1000-8000-000000000001',
}
# compute2 (ceph flavour): the same shape, its own host/initiator
CONNECTOR_COMPUTE2 = dict(CONNECTOR, host='compute2', initiator='iqn.2004-10.com.ubuntu:01:labcompute2',
                          **{'system uuid': '4c4c4544-0000-1000-8000-000000000002'})
# Stale info as if the backend had moved (used by --stale)
STALE_DATA = {
    'target_discovered': False,
    'target_portal': '192.0.2.10:3260',
    'target_iqn': 'iqn.2010-10.org.openstack:volume-OLD',
    'target_lun': 7,
    'target_portals': ['192.0.2.10:3260', '192.0.2.11:3260'],
    'auth_method': 'CHAP', 'auth_username': 'olduser', 'auth_password': 'oldpass',
}
# --stale --backend rbd: a mon address where nothing listens (loopback only, on purpose)
STALE_RBD_DATA = {'hosts': ['127.0.0.254'], 'ports': ['6789']}


def nova_setup():
    from nova import config, objects
    from nova import context as nctx
    config.parse_args(['seed', '--config-file', S['OPENSTACK_LAB_NOVA_CONF']])
    objects.register_all()
    return nctx


def compute_node(nctx, ctxt, cell, host):
    """compute1 (fake driver): node compute1. Others: the node their driver reported."""
    if host == 'compute1':
        return 'compute1'
    from nova import objects
    with nctx.target_cell(ctxt, cell) as cctxt:
        nodes = objects.ComputeNodeList.get_all_by_host(cctxt, host)
    if not nodes:
        sys.exit('seed.py: no compute node for host %s (is it up? ceph flavour: OPENSTACK_LAB_CEPH=1 up.sh)' % host)
    return nodes[0].hypervisor_hostname


def make_instance(nctx, ctxt, cell, project_id, user_id, idx, vm_state, locked,
                  host='compute1', node='compute1', bfv=False):
    from nova import objects
    from nova.compute import power_state
    inst_uuid = str(uuidlib.uuid4())
    flavor = objects.Flavor(
        id=1, flavorid='1', name='m1.tiny', memory_mb=512, vcpus=1, root_gb=1,
        ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0, disabled=False,
        is_public=True, extra_specs={}, projects=[], description=None)
    with nctx.target_cell(ctxt, cell) as cctxt:
        inst = objects.Instance(
            cctxt, uuid=inst_uuid, project_id=project_id, user_id=user_id,
            display_name='lab-vm-%d' % idx, hostname='lab-vm-%d' % idx,
            host=host, node=node, launched_on=host,
            availability_zone='nova',
            vm_state=vm_state,
            power_state=(power_state.SHUTDOWN if vm_state == 'stopped'
                         else power_state.RUNNING),
            task_state=None, image_ref='',
            root_device_name='/dev/vda',
            memory_mb=512, vcpus=1, root_gb=1, ephemeral_gb=0,
            flavor=flavor, old_flavor=None, new_flavor=None,
            instance_type_id=1,
            locked=locked, locked_by='admin' if locked else None,
            launched_at=timeutils.utcnow(),
            system_metadata={'image_min_disk': '1', 'image_min_ram': '0'},
            metadata={})
        if host != 'compute1':
            # as nova-api's _populate_instance_for_create: an empty network_info ('[]'), not
            # NULL (a real compute's start path iterates over it); compute1 seeds stay as before
            from nova.network import model as network_model
            inst.info_cache = objects.InstanceInfoCache(network_info=network_model.NetworkInfo())
        inst.create()
        objects.InstanceMapping(
            ctxt, instance_uuid=inst_uuid, cell_mapping=cell,
            project_id=project_id, user_id=user_id,
            queued_for_delete=False).create()
        # root disk BDM, as a booted-from-image instance has (boot from volume: the
        # volume BDM made by main() is the root disk instead)
        if not bfv:
            objects.BlockDeviceMapping(
                cctxt, instance_uuid=inst_uuid, source_type='image',
                destination_type='local', boot_index=0, device_name='/dev/vda',
                device_type='disk', delete_on_termination=True, image_id=None,
                volume_size=None, no_device=False).create()
    return inst_uuid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--legacy', action='store_true',
                    help='cinder v2-style attach: os-reserve/os-initialize_connection/os-attach, attachment_id NULL in BDM')
    ap.add_argument('--stale', action='store_true',
                    help='store a connection_info that differs from what Cinder hands out now')
    ap.add_argument('--count', type=int, default=1)
    ap.add_argument('--volumes', type=int, default=1,
                    help='volumes attached to each instance (one JSON record per volume)')
    ap.add_argument('--vm-state', default='stopped')
    ap.add_argument('--locked', action='store_true')
    ap.add_argument('--no-attach', action='store_true',
                    help='create instance + available volume but no BDM/attachment')
    ap.add_argument('--backend', choices=('fake', 'rbd'), default='fake',
                    help="volume type: fake = the default type (cinder1@fake); rbd = type 'rbd' "
                         '(cinder1@rbd, ceph flavour)')
    ap.add_argument('--host', default='compute1', help='compute host of the instance (compute2: ceph flavour)')
    ap.add_argument('--boot-from-volume', action='store_true',
                    help='the volume is the root disk (/dev/vda, boot_index 0), no image BDM')
    args = ap.parse_args()

    nctx = nova_setup()
    from nova import objects
    from oslo_serialization import jsonutils

    cc = cinder('3.44')  # admin user, admin project
    sess_access = cc.client.session.auth.get_access(cc.client.session)
    project_id, user_id = sess_access.project_id, sess_access.user_id

    ctxt = nctx.get_admin_context()
    cell = [c for c in objects.CellMappingList.get_all(ctxt) if c.name == 'cell1'][0]
    from nova.volume import cinder as nova_cinder
    volume_api = nova_cinder.API()

    node = compute_node(nctx, ctxt, cell, args.host)
    bfv = args.boot_from_volume
    vol_kw = {'volume_type': 'rbd'} if args.backend == 'rbd' else {}
    out = []
    for i in range(args.count):
        inst_uuid = make_instance(nctx, ctxt, cell, project_id, user_id, i,
                                  args.vm_state, args.locked, args.host, node, bfv)
        for j in range(args.volumes):
            mountpoint = '/dev/vd' + 'abcdefghijklmnop'[j + (0 if bfv else 1)]
            vol = cc.volumes.create(1, name='lab-vol-%s-%d' % (inst_uuid[:8], j), **vol_kw)
            vol = wait_volume(cc, vol.id)
            rec = {'instance_uuid': inst_uuid, 'volume_id': vol.id,
                   'legacy': args.legacy, 'stale': args.stale,
                   'vm_state': args.vm_state, 'locked': args.locked}
            if args.no_attach:
                rec.update(bdm_uuid=None, attachment_id=None)
                out.append(rec)
                continue
            connector = copy.deepcopy(CONNECTOR if args.host == 'compute1' else
                                      dict(CONNECTOR_COMPUTE2, host=args.host))
            # Attach exactly the way nova-compute does it, through nova's own
            # nova.volume.cinder.API (admin context -> [cinder] service auth).
            if args.legacy:
                # nova.virt.block_device.DriverVolumeBlockDevice._legacy_volume_attach
                volume_api.reserve_volume(ctxt, vol.id)
                connection_info = volume_api.initialize_connection(ctxt, vol.id, connector)
                volume_api.attach(ctxt, vol.id, inst_uuid, mountpoint, mode='rw')
                attachment_id = None
            else:
                # nova.compute.api (attachment_create) + block_device._volume_attach
                attachment_id = volume_api.attachment_create(ctxt, vol.id, inst_uuid)['id']
                connection_info = volume_api.attachment_update(
                    ctxt, attachment_id, connector, mountpoint)['connection_info']
                volume_api.attachment_complete(ctxt, attachment_id)
            connection_info['serial'] = vol.id          # nova always stashes serial
            if args.stale:
                connection_info.setdefault('data', {}).update(
                    STALE_RBD_DATA if args.backend == 'rbd' else STALE_DATA)
            wait_volume(cc, vol.id, want=('in-use',))
            with nctx.target_cell(ctxt, cell) as cctxt:
                bdm = objects.BlockDeviceMapping(
                    cctxt, instance_uuid=inst_uuid, source_type='volume',
                    destination_type='volume', volume_id=vol.id,
                    attachment_id=attachment_id,
                    connection_info=jsonutils.dumps(connection_info),
                    device_name=mountpoint, device_type='disk', disk_bus=None,
                    boot_index=0 if bfv and j == 0 else None, delete_on_termination=False, volume_size=1,
                    no_device=False, guest_format=None, tag=None, volume_type=None)
                bdm.create()
            rec.update(bdm_uuid=bdm.uuid, attachment_id=attachment_id,
                       connection_info=connection_info)
            out.append(rec)
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
