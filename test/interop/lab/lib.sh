# Settings shared by up.sh, down.sh and env.sh (sourced, never executed).
#
# Inputs (environment).  Unset ones fall back to what $OPENSTACK_LAB_DIR/lab.env
# recorded at the last up.sh (settings are sticky per state dir), then to the default:
#   OPENSTACK_LAB_DIR            state dir: configs, keys, pids, logs, locks  (/var/tmp/nova-bdm-interop)
#   OPENSTACK_LAB_DB_PREFIX      prefix of the 6 database names               (nbi_ -> nbi_keystone, nbi_nova, ...)
#   OPENSTACK_LAB_VHOST          RabbitMQ vhost                               (nbi)
#   OPENSTACK_LAB_DB_USER        MariaDB user created for the services        (lab)
#   OPENSTACK_LAB_DB_PASSWORD                                                 (lab)
#   OPENSTACK_LAB_KEYSTONE_PORT / _CINDER_PORT / _PLACEMENT_PORT              (5000 / 8776 / 8778)
#   OPENSTACK_LAB_MEMCACHED_PORT token cache of Keystone and keystonemiddleware (11211)
#   OPENSTACK_LAB_CEPH           1 = also the "ceph" flavour (README.md "Ceph flavour"): a Ceph
#                                cluster, Cinder backend rbd, libvirtd, nova-compute compute2    (1)
#   OPENSTACK_LAB_CEPH_MOUNT_TIMEOUT  ceph flavour: client_mount_timeout (s) written to
#                                /etc/ceph/ceph.conf for QEMU's librbd; 0 = write no file (300 s)  (20)
#   OPENSTACK_LAB_CEPH_SECRET_UUID    ceph flavour: libvirt secret uuid = rbd_secret_uuid
#   OPENSTACK_LAB_NEUTRON_PORT   ceph flavour: the empty neutron stub compute2 talks to          (9696)
# Everything listens on 127.0.0.1 only.

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_PY=/usr/bin/python3          # Debian's python: nova/cinder/keystone live there (not a pyenv one)
export PYTHONDONTWRITEBYTECODE=1  # the script folder is read-only

OPENSTACK_LAB_DIR=${OPENSTACK_LAB_DIR:-/var/tmp/nova-bdm-interop}
[[ $OPENSTACK_LAB_DIR == /* ]] || OPENSTACK_LAB_DIR=$PWD/$OPENSTACK_LAB_DIR
OPENSTACK_LAB_DIR=${OPENSTACK_LAB_DIR%/}
export OPENSTACK_LAB_DIR

declare -A _lab_saved=()
if [[ -f $OPENSTACK_LAB_DIR/lab.env ]]; then
  while IFS='=' read -r _k _v; do
    _k=${_k#export }; _v=${_v#\'}; _v=${_v%\'}
    [[ $_k == OPENSTACK_LAB_* ]] && _lab_saved[$_k]=$_v
  done <"$OPENSTACK_LAB_DIR/lab.env"
fi
_lab_set() {   # _lab_set NAME DEFAULT REGEX
  local n=$1
  if [[ -z ${!n+x} ]]; then
    if [[ -n ${_lab_saved[$n]+x} ]]; then printf -v "$n" '%s' "${_lab_saved[$n]}"; else printf -v "$n" '%s' "$2"; fi
  fi
  if ! [[ ${!n} =~ $3 ]]; then echo "interop lab: invalid $n='${!n}' (must match $3)" >&2; return 1; fi
  export "$n"
}
_lab_set OPENSTACK_LAB_DB_PREFIX   'nbi_' '^[A-Za-z0-9_]{0,40}$'           || exit 2
_lab_set OPENSTACK_LAB_VHOST       'nbi' '^(/|[A-Za-z0-9_.-]{1,100})$'    || exit 2
_lab_set OPENSTACK_LAB_DB_USER     'lab' '^[A-Za-z0-9_]{1,32}$'           || exit 2
_lab_set OPENSTACK_LAB_DB_PASSWORD 'lab' '^[A-Za-z0-9_.-]{1,64}$'         || exit 2
_lab_set OPENSTACK_LAB_KEYSTONE_PORT  5000 '^[0-9]{2,5}$' || exit 2
_lab_set OPENSTACK_LAB_CINDER_PORT    8776 '^[0-9]{2,5}$' || exit 2
_lab_set OPENSTACK_LAB_PLACEMENT_PORT 8778 '^[0-9]{2,5}$' || exit 2
_lab_set OPENSTACK_LAB_MEMCACHED_PORT 11211 '^[0-9]{2,5}$' || exit 2
_lab_set OPENSTACK_LAB_CEPH 1 '^[01]$' || exit 2
_lab_set OPENSTACK_LAB_CEPH_MOUNT_TIMEOUT 20 '^[0-9]{1,4}$' || exit 2
_lab_set OPENSTACK_LAB_CEPH_SECRET_UUID 5c1d6e84-2a3b-4f5e-9d8c-0a1b2c3d4e5f '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' || exit 2
_lab_set OPENSTACK_LAB_NEUTRON_PORT 9696 '^[0-9]{2,5}$' || exit 2
unset _k _v

LAB_ETC=$OPENSTACK_LAB_DIR/etc LAB_RUN=$OPENSTACK_LAB_DIR/run
LAB_LOG=$OPENSTACK_LAB_DIR/log LAB_STATE=$OPENSTACK_LAB_DIR/state
_p=$OPENSTACK_LAB_DB_PREFIX
export OPENSTACK_LAB_SRC=$LAB_SRC
export OPENSTACK_LAB_ETC_DIR=$LAB_ETC OPENSTACK_LAB_RUN_DIR=$LAB_RUN
export OPENSTACK_LAB_LOG_DIR=$LAB_LOG OPENSTACK_LAB_STATE_DIR=$LAB_STATE
export OPENSTACK_LAB_NOVA_CONF=$LAB_ETC/nova.conf OPENSTACK_LAB_CINDER_CONF=$LAB_ETC/cinder.conf
export OPENSTACK_LAB_KEYSTONE_CONF=$LAB_ETC/keystone.conf OPENSTACK_LAB_PLACEMENT_CONF=$LAB_ETC/placement/placement.conf
export OPENSTACK_LAB_CEPH_DIR=$OPENSTACK_LAB_DIR/ceph OPENSTACK_LAB_CEPH_CONF=$OPENSTACK_LAB_DIR/ceph/ceph.conf
# the token caches' memcached (keystone.conf [cache] memcache_servers, cinder.conf
# [keystone_authtoken] memcached_servers): what a bench prints as the lab's cache setting
export OPENSTACK_LAB_MEMCACHED_SERVERS=127.0.0.1:$OPENSTACK_LAB_MEMCACHED_PORT
export OPENSTACK_LAB_NOVA_COMPUTE2_CONF=$LAB_ETC/nova-compute2.conf OPENSTACK_LAB_CINDER_RBD_CONF=$LAB_ETC/cinder-rbd.conf
# compute2's [libvirt] virt_type (ceph flavour): kvm if /dev/kvm can be opened, else qemu
if (exec 3<>/dev/kvm) 2>/dev/null; then OPENSTACK_LAB_LIBVIRT_VIRT_TYPE=kvm; else OPENSTACK_LAB_LIBVIRT_VIRT_TYPE=qemu; fi
export OPENSTACK_LAB_LIBVIRT_VIRT_TYPE
# compute2's [libvirt] cpu_model_extra_flags. Some KVM hosts cannot set MSR 0x10a
# (IA32_ARCH_CAPABILITIES), which QEMU sets for a host-model CPU: every guest then aborts at
# start ("failed to set MSR 0x10a", kvm_buf_set_msrs assertion; seen on an AMD EPYC under
# Firecracker). up.sh probes it once per state dir (lab_probe_cpu_flags, after the dir is marked
# as the lab's); sourcing this file only reads the result, it never writes.
LAB_CPU_FLAGS_FILE=$LAB_STATE/kvm-cpu-flags
OPENSTACK_LAB_LIBVIRT_CPU_FLAGS=
[[ $OPENSTACK_LAB_LIBVIRT_VIRT_TYPE == kvm && -f $LAB_CPU_FLAGS_FILE ]] && OPENSTACK_LAB_LIBVIRT_CPU_FLAGS=$(cat "$LAB_CPU_FLAGS_FILE")
export OPENSTACK_LAB_LIBVIRT_CPU_FLAGS
# A 3 s QEMU run with -cpu host: still running when timeout stops it (124) means the guest CPU
# works; a quick exit is an abort, and the guests get -arch-capabilities (nova's "-flag" notation).
lab_probe_cpu_flags() {
  [[ $OPENSTACK_LAB_LIBVIRT_VIRT_TYPE == kvm && ! -f $LAB_CPU_FLAGS_FILE ]] || return 0
  command -v qemu-system-x86_64 >/dev/null 2>&1 || return 0
  if timeout 3 qemu-system-x86_64 -enable-kvm -cpu host -display none -m 64 -nodefaults -no-reboot >/dev/null 2>&1 || [[ $? == 124 ]]; then
    : >"$LAB_CPU_FLAGS_FILE"
  else
    echo -arch-capabilities >"$LAB_CPU_FLAGS_FILE"
  fi
  OPENSTACK_LAB_LIBVIRT_CPU_FLAGS=$(cat "$LAB_CPU_FLAGS_FILE")
  export OPENSTACK_LAB_LIBVIRT_CPU_FLAGS
}
export OPENSTACK_LAB_NOVA_MANAGE=$LAB_SRC/nova-manage OPENSTACK_LAB_SEED=$LAB_SRC/seed.py OPENSTACK_LAB_PYTHON=$LAB_PY
export OPENSTACK_LAB_DB_KEYSTONE=${_p}keystone OPENSTACK_LAB_DB_CINDER=${_p}cinder
export OPENSTACK_LAB_DB_NOVA_API=${_p}nova_api OPENSTACK_LAB_DB_NOVA=${_p}nova
export OPENSTACK_LAB_DB_NOVA_CELL0=${_p}nova_cell0 OPENSTACK_LAB_DB_PLACEMENT=${_p}placement
export OPENSTACK_LAB_DB_URL="mysql+pymysql://$OPENSTACK_LAB_DB_USER:$OPENSTACK_LAB_DB_PASSWORD@127.0.0.1"
export OPENSTACK_LAB_NOVA_DB_URL="$OPENSTACK_LAB_DB_URL/$OPENSTACK_LAB_DB_NOVA?charset=utf8"
export OPENSTACK_LAB_NOVA_API_DB_URL="$OPENSTACK_LAB_DB_URL/$OPENSTACK_LAB_DB_NOVA_API?charset=utf8"
export OPENSTACK_LAB_CINDER_DB_URL="$OPENSTACK_LAB_DB_URL/$OPENSTACK_LAB_DB_CINDER?charset=utf8"
if [[ $OPENSTACK_LAB_VHOST == / ]]; then _vh=''; else _vh=$OPENSTACK_LAB_VHOST; fi
export OPENSTACK_LAB_TRANSPORT_URL="rabbit://guest:guest@127.0.0.1:5672/$_vh"
export OPENSTACK_LAB_KEYSTONE_URL="http://127.0.0.1:$OPENSTACK_LAB_KEYSTONE_PORT/v3"
export OPENSTACK_LAB_CINDER_URL="http://127.0.0.1:$OPENSTACK_LAB_CINDER_PORT/v3"
export OPENSTACK_LAB_PLACEMENT_URL="http://127.0.0.1:$OPENSTACK_LAB_PLACEMENT_PORT"
unset _p _vh

# Names printed by env.sh / recorded in lab.env, in this order.
LAB_ENV_NAMES="OPENSTACK_LAB_DIR OPENSTACK_LAB_DB_PREFIX OPENSTACK_LAB_VHOST OPENSTACK_LAB_DB_USER
 OPENSTACK_LAB_DB_PASSWORD OPENSTACK_LAB_KEYSTONE_PORT OPENSTACK_LAB_CINDER_PORT OPENSTACK_LAB_PLACEMENT_PORT OPENSTACK_LAB_MEMCACHED_PORT
 OPENSTACK_LAB_CEPH OPENSTACK_LAB_CEPH_MOUNT_TIMEOUT OPENSTACK_LAB_CEPH_SECRET_UUID OPENSTACK_LAB_NEUTRON_PORT
 OPENSTACK_LAB_MEMCACHED_SERVERS OPENSTACK_LAB_CEPH_DIR OPENSTACK_LAB_CEPH_CONF OPENSTACK_LAB_NOVA_COMPUTE2_CONF OPENSTACK_LAB_CINDER_RBD_CONF
 OPENSTACK_LAB_SRC OPENSTACK_LAB_ETC_DIR OPENSTACK_LAB_RUN_DIR OPENSTACK_LAB_LOG_DIR OPENSTACK_LAB_STATE_DIR
 OPENSTACK_LAB_NOVA_CONF OPENSTACK_LAB_CINDER_CONF OPENSTACK_LAB_KEYSTONE_CONF OPENSTACK_LAB_PLACEMENT_CONF
 OPENSTACK_LAB_NOVA_MANAGE OPENSTACK_LAB_SEED OPENSTACK_LAB_PYTHON
 OPENSTACK_LAB_DB_KEYSTONE OPENSTACK_LAB_DB_CINDER OPENSTACK_LAB_DB_NOVA_API OPENSTACK_LAB_DB_NOVA
 OPENSTACK_LAB_DB_NOVA_CELL0 OPENSTACK_LAB_DB_PLACEMENT OPENSTACK_LAB_DB_URL OPENSTACK_LAB_NOVA_DB_URL
 OPENSTACK_LAB_NOVA_API_DB_URL OPENSTACK_LAB_CINDER_DB_URL OPENSTACK_LAB_TRANSPORT_URL
 OPENSTACK_LAB_KEYSTONE_URL OPENSTACK_LAB_CINDER_URL OPENSTACK_LAB_PLACEMENT_URL"
# Plain OpenStack client variables (admin/admin in project admin).
lab_os_vars() {
  export OS_AUTH_URL=$OPENSTACK_LAB_KEYSTONE_URL OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne
  export OS_USERNAME=admin OS_PASSWORD=admin OS_PROJECT_NAME=admin
  export OS_USER_DOMAIN_ID=default OS_PROJECT_DOMAIN_ID=default OS_INTERFACE=public
}
LAB_OS_NAMES="OS_AUTH_URL OS_IDENTITY_API_VERSION OS_REGION_NAME OS_USERNAME OS_PASSWORD OS_PROJECT_NAME
 OS_USER_DOMAIN_ID OS_PROJECT_DOMAIN_ID OS_INTERFACE"

lab_env_lines() {   # "export NAME='value'" for every setting (values never contain a quote)
  local n
  for n in $LAB_ENV_NAMES; do printf "export %s='%s'\n" "$n" "${!n}"; done
}

# The services up.sh starts, in stop order.
# nova-compute2 and neutron-stub exist in the ceph flavour only (no pid file otherwise).
LAB_SERVICES="nova-compute2 neutron-stub nova-compute nova-conductor cinder-volume cinder-scheduler cinder-api placement keystone memcached"

# True if the pid is alive AND its command line names this state dir's etc/, or (memcached's
# command line cannot) its environment has this state dir's OPENSTACK_LAB_ETC_DIR (guards
# against stale pid files after a reboot and against another state dir's processes).
# grep reads to the end here, never -q: the scripts run with pipefail, and a grep -q that matches
# early (an environment larger than a pipe buffer) kills its writer with SIGPIPE, so the pipeline
# failed and the lab took its own memcached for a stranger (seen under npm run test:interop).
lab_pid_ours() {
  [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null &&
    { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -F "$LAB_ETC/" >/dev/null ||
      tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -xF "OPENSTACK_LAB_ETC_DIR=$LAB_ETC" >/dev/null; }
}
lab_running() { [[ -f $LAB_RUN/$1.pid ]] && lab_pid_ours "$(cat "$LAB_RUN/$1.pid")"; }
