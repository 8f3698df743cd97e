#!/usr/bin/python3
"""reboot_instance.py INSTANCE_UUID [--timeout S]
Hard-reboot an instance the way nova-api's reboot(reboot_type='HARD') does (`openstack server
reboot --hard`), without nova-api (see tools/instance_power.py): task_state rebooting_hard,
instance action 'reboot', cast reboot_instance(reboot_type='HARD') to the instance's host, wait,
print JSON {vm_state, power_state, task_state, seconds, domain_rbd_hosts, qemu_pid_before,
qemu_pid, error, ...}. The compute destroys the domain and defines it again from the BDMs'
stored connection_info, the path a host reboot (resume_guests_state_on_host_boot) and a
stop/start take too. Exit 0 on success. Run with /usr/bin/python3.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from instance_power import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main('reboot'))
