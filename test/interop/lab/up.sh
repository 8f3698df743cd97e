#!/bin/bash
# up.sh [--fresh] -- bring the local OpenStack lab up (idempotent), then wait until it is ready.
#
#   --fresh   stop this state dir's services, drop + recreate the lab's databases (and the
#             RabbitMQ vhost unless it is '/'), wipe the state dir, then start from scratch.
#
# Settings: environment variables OPENSTACK_LAB_* (see lib.sh / README.md). Everything this
# writes goes under $OPENSTACK_LAB_DIR (default /var/tmp/nova-bdm-interop). Needs root.
# OPENSTACK_LAB_CEPH=1 (sticky) adds the ceph flavour (README.md "Ceph flavour", lib-ceph.sh):
# Ceph, Cinder backend rbd, libvirtd, nova-compute compute2 (libvirt); it also writes libvirt's
# system dirs and /etc/ceph/ceph.conf (down.sh removes that file).
# Exit 0 = everything ready; otherwise the last line is "[up] FAILED: <component> ..." after
# the tail of that component's log.
set -euo pipefail
FRESH=0
for a in "$@"; do
  case $a in
    --fresh) FRESH=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "up.sh: unknown argument '$a' (usage: up.sh [--fresh])" >&2; exit 2 ;;
  esac
done
. "$(dirname "$(readlink -f "$0")")/lib.sh"
. "$LAB_SRC/lib-ceph.sh"
CEPH=$OPENSTACK_LAB_CEPH

T0=${EPOCHREALTIME//[.,]/}
elapsed() { local d=$(( ${EPOCHREALTIME//[.,]/} - T0 )); printf '%d.%d' $((d / 1000000)) $((d / 100000 % 10)); }
say() { echo "[up $(elapsed)s] $*"; }
logs_for() {
  case $1 in
    keystone|placement) echo "$LAB_LOG/$1.out $LAB_LOG/$1-uwsgi.log $LAB_LOG/$1.log" ;;
    cinder-*|nova-conductor|nova-compute|nova-compute2) echo "$LAB_LOG/$1.out $LAB_LOG/$1.log" ;;
    neutron-stub) echo "$LAB_LOG/$1.out" ;;
    ceph) echo "$LAB_LOG/ceph.log $(ls "$OPENSTACK_LAB_CEPH_DIR"/log/*.log 2>/dev/null | tr '\n' ' ')" ;;
    libvirt) echo "$LAB_LOG/libvirt.log $LAB_LOG/libvirtd.log" ;;
    *) echo "$LAB_LOG/$1.log" ;;
  esac
}
fail() {   # fail COMPONENT REASON...
  local c=$1 f; shift
  echo "[up $(elapsed)s] FAILED: $c: $*" >&2
  for f in $(logs_for "$c"); do
    [[ -s $f ]] || continue
    # ('No DB access allowed in nova-compute' is logged as ERROR at every normal compute start)
    if grep -E ' (ERROR|CRITICAL) |Traceback' "$f" | grep -vq 'No DB access allowed in nova-compute'; then
      echo "----- $f: last ERROR/CRITICAL lines" >&2
      grep -E ' (ERROR|CRITICAL) |Traceback' "$f" | grep -v 'No DB access allowed in nova-compute' | tail -n 8 | cut -c1-400 >&2
    fi
    echo "----- $f: last 30 lines" >&2
    tail -n 30 "$f" | cut -c1-400 >&2
  done
  echo "[up] FAILED: $c (state dir $OPENSTACK_LAB_DIR, logs in $LAB_LOG)" >&2
  exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[[ $(id -u) == 0 ]] || { echo "up.sh: must run as root (installs packages, starts MariaDB/RabbitMQ, uses MariaDB root via unix socket)" >&2; exit 2; }

# ------------------------------------------------------------------ state dir + lock
if [[ -d $OPENSTACK_LAB_DIR && ! -e $OPENSTACK_LAB_DIR/.openstack-lab && -n $(ls -A "$OPENSTACK_LAB_DIR") ]]; then
  echo "up.sh: $OPENSTACK_LAB_DIR exists, is not empty and is not an openstack-lab state dir; refusing to use it" >&2; exit 2
fi
mkdir -p "$OPENSTACK_LAB_DIR"; touch "$OPENSTACK_LAB_DIR/.openstack-lab"
exec 9>"$OPENSTACK_LAB_DIR/.up.lock"
flock -w 900 9 || { echo "up.sh: another up.sh holds $OPENSTACK_LAB_DIR/.up.lock" >&2; exit 2; }
if ((FRESH)); then
  say "--fresh: stopping services of $OPENSTACK_LAB_DIR, wiping it"
  bash "$LAB_SRC/down.sh" 9>&-
  rm -rf "$LAB_ETC" "$LAB_RUN" "$LAB_LOG" "$LAB_STATE" "$OPENSTACK_LAB_CEPH_DIR" "$OPENSTACK_LAB_DIR/lab.env"
fi
mkdir -p "$LAB_ETC" "$LAB_RUN" "$LAB_LOG" "$LAB_STATE"/{cinder,locks,nova/instances}
((CEPH)) && mkdir -p "$LAB_STATE/nova2/instances"
((CEPH)) && lab_probe_cpu_flags
rm -f "$LAB_RUN/check.failed"
say "state dir $OPENSTACK_LAB_DIR, db prefix '${OPENSTACK_LAB_DB_PREFIX}', vhost '$OPENSTACK_LAB_VHOST'$( ((CEPH)) && echo ', ceph flavour')"
# Settings or templates changed while this state dir's services run? Refuse before touching anything.
lab_env_lines >"$OPENSTACK_LAB_DIR/.lab.env.new"
changed=$("$LAB_PY" "$LAB_SRC/tools/render.py" --check 2>>"$LAB_LOG/config.log") || fail config "rendering etc/*.in failed"
cmp -s "$OPENSTACK_LAB_DIR/.lab.env.new" "$OPENSTACK_LAB_DIR/lab.env" 2>/dev/null || changed+=" lab.env"
if [[ -n ${changed// /} ]]; then
  for s in $LAB_SERVICES; do
    lab_running "$s" && fail config "settings/config changed ($changed) while $s is running: run down.sh first, then up.sh"
  done
fi

# Fail fast if another process (e.g. another lab) holds one of our ports.
ports=("memcached $OPENSTACK_LAB_MEMCACHED_PORT" "keystone $OPENSTACK_LAB_KEYSTONE_PORT" "placement $OPENSTACK_LAB_PLACEMENT_PORT" "cinder-api $OPENSTACK_LAB_CINDER_PORT")
((CEPH)) && ports+=("neutron-stub $OPENSTACK_LAB_NEUTRON_PORT")
for sp in "${ports[@]}"; do
  set -- $sp
  if ! lab_running "$1" && port_open "$2"; then
    echo "[up] FAILED: $1: 127.0.0.1:$2 is already in use by a process this state dir did not start (another lab? stop it with its down.sh)" >&2
    exit 1
  fi
done

# ------------------------------------------------------------------ packages
PKGS=$(grep -hv '^#' "$LAB_SRC/packages.txt")
((CEPH)) && PKGS+=" $(grep -hv '^#' "$LAB_SRC/packages-ceph.txt")"
missing=()
for p in $PKGS; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt-get install --no-install-recommends ${missing[*]}"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    >>"$LAB_LOG/packages.log" 2>&1 9>&- || fail packages "apt-get install failed"
fi
dpkg-query -W -f='${Package} ${Version}\n' python3-keystone python3-placement python3-cinder python3-nova \
  uwsgi-core mariadb-server rabbitmq-server >"$LAB_LOG/versions.txt"

# ------------------------------------------------------------------ mariadb / rabbitmq (shared; left running by down.sh)
MYSQL=(mysql --protocol=socket -uroot)
if ! mysqladmin --protocol=socket -uroot ping >/dev/null 2>&1; then
  say "starting mariadb"
  install -d -o mysql -g mysql /run/mysqld
  setsid nohup /usr/sbin/mariadbd --user=mysql >>"$LAB_LOG/mariadb.log" 2>&1 </dev/null 9>&- &
  for i in $(seq 60); do mysqladmin --protocol=socket -uroot ping >/dev/null 2>&1 && break; sleep 1; done
  mysqladmin --protocol=socket -uroot ping >/dev/null 2>&1 || fail mariadb "mariadbd did not start"
fi
port_open 3306 || fail mariadb "MariaDB does not listen on 127.0.0.1:3306"
# Debian's default of 151 connections is less than one cloud of services plus 20 controllers
# at once (many-controllers.test.ts); production databases run with thousands.
mysql --protocol=socket -uroot -e 'SET GLOBAL max_connections = GREATEST(@@max_connections, 1000)' 9>&- ||
  fail mariadb "could not raise max_connections"
if ! port_open 5672; then
  say "starting rabbitmq"
  rabbitmq-server -detached >>"$LAB_LOG/rabbitmq.log" 2>&1 9>&- || true
  for i in $(seq 90); do port_open 5672 && break; sleep 1; done
  timeout 120 rabbitmqctl -q await_startup >>"$LAB_LOG/rabbitmq.log" 2>&1 9>&- || fail rabbitmq "rabbitmq-server did not start (see also /var/log/rabbitmq)"
fi
VH=$OPENSTACK_LAB_VHOST
if [[ $VH != / ]]; then
  ((FRESH)) && rabbitmqctl -q delete_vhost "$VH" >/dev/null 2>&1 9>&- || true
  if ! rabbitmqctl -q list_vhosts 2>>"$LAB_LOG/rabbitmq.log" 9>&- | grep -xF "$VH" >/dev/null; then
    say "rabbitmq: add_vhost $VH"
    rabbitmqctl -q add_vhost "$VH" >>"$LAB_LOG/rabbitmq.log" 2>&1 9>&- || fail rabbitmq "add_vhost $VH failed"
    rabbitmqctl -q set_permissions -p "$VH" guest '.*' '.*' '.*' >>"$LAB_LOG/rabbitmq.log" 2>&1 9>&- ||
      fail rabbitmq "set_permissions on $VH failed"
  fi
fi

# ------------------------------------------------------------------ databases + DB user
DBS="$OPENSTACK_LAB_DB_KEYSTONE $OPENSTACK_LAB_DB_CINDER $OPENSTACK_LAB_DB_NOVA_API $OPENSTACK_LAB_DB_NOVA $OPENSTACK_LAB_DB_NOVA_CELL0 $OPENSTACK_LAB_DB_PLACEMENT"
sql=""
if ((FRESH)); then
  say "--fresh: dropping databases $DBS"
  for d in $DBS; do sql+="DROP DATABASE IF EXISTS \`$d\`;"; done
fi
for d in $DBS; do sql+="CREATE DATABASE IF NOT EXISTS \`$d\` CHARACTER SET utf8mb4;"; done
U=$OPENSTACK_LAB_DB_USER PW=$OPENSTACK_LAB_DB_PASSWORD
for h in 127.0.0.1 localhost; do
  sql+="CREATE USER IF NOT EXISTS '$U'@'$h' IDENTIFIED BY '$PW'; ALTER USER '$U'@'$h' IDENTIFIED BY '$PW'; GRANT ALL ON *.* TO '$U'@'$h';"
done
"${MYSQL[@]}" -e "$sql FLUSH PRIVILEGES;" >>"$LAB_LOG/mariadb-setup.log" 2>&1 || fail mariadb-setup "creating databases / user failed"

# ------------------------------------------------------------------ configs (rendered from etc/*.in)
if [[ -n ${changed// /} ]]; then
  "$LAB_PY" "$LAB_SRC/tools/render.py" >/dev/null 2>>"$LAB_LOG/config.log" || fail config "rendering etc/*.in failed"
  mv "$OPENSTACK_LAB_DIR/.lab.env.new" "$OPENSTACK_LAB_DIR/lab.env"
  say "rendered configs into $LAB_ETC:$changed"
else
  rm -f "$OPENSTACK_LAB_DIR/.lab.env.new"
fi

# ------------------------------------------------------------------ schemas + keystone setup (in parallel)
KM() { "$LAB_PY" -c 'import sys; from keystone.cmd.manage import main; sys.argv[0]="keystone-manage"; sys.exit(main())' \
         --config-file "$LAB_ETC/keystone.conf" "$@"; }
NM() { "$LAB_PY" -c 'import sys; from nova.cmd.manage import main; sys.exit(main())' --config-file "$LAB_ETC/nova.conf" "$@"; }
step_keystone() {   # db_sync; bootstrap, fernet/credential keys, service users/roles/catalog (tools/ks_setup.py)
  KM db_sync
  "$LAB_PY" "$LAB_SRC/tools/ks_setup.py"
}
step_cinder() {
  "$LAB_PY" -c 'import sys; from cinder.cmd.manage import main; sys.argv[0]="cinder-manage"; sys.exit(main())' \
    --config-file "$LAB_ETC/cinder.conf" --log-file "$LAB_LOG/cinder-manage.log" db sync
}
step_placement() {
  "$LAB_PY" -c 'import sys; from placement.cmd.manage import main; sys.argv[0]="placement-manage"; sys.exit(main())' \
    --config-dir "$LAB_ETC/placement" db sync
}
step_nova() { "$LAB_PY" "$LAB_SRC/tools/nova_db.py"; }   # api_db sync, map_cell0, create_cell cell1, db sync
# Skip all of it when nothing changed since the last successful run: same package versions,
# settings, scripts, keys, and the DBs still hold the same tables, cells and endpoints.
stamp_now() {
  local in="'$OPENSTACK_LAB_DB_KEYSTONE','$OPENSTACK_LAB_DB_CINDER','$OPENSTACK_LAB_DB_NOVA_API','$OPENSTACK_LAB_DB_NOVA','$OPENSTACK_LAB_DB_NOVA_CELL0','$OPENSTACK_LAB_DB_PLACEMENT'"
  { cat "$LAB_LOG/versions.txt" "$OPENSTACK_LAB_DIR/lab.env"
    cat "$LAB_SRC/up.sh" "$LAB_SRC"/tools/*.py "$LAB_SRC"/etc/*.in | sha256sum
    ls -l --time-style=+%s "$LAB_ETC/fernet-keys" "$LAB_ETC/credential-keys" 2>&1
    "${MYSQL[@]}" -N -e "SELECT table_schema, COUNT(*) FROM information_schema.tables WHERE table_schema IN ($in) GROUP BY table_schema ORDER BY 1;
      SELECT name, transport_url, database_connection FROM \`$OPENSTACK_LAB_DB_NOVA_API\`.cell_mappings ORDER BY name;
      SELECT interface, url FROM \`$OPENSTACK_LAB_DB_KEYSTONE\`.endpoint ORDER BY url, interface;
      SELECT name FROM \`$OPENSTACK_LAB_DB_KEYSTONE\`.local_user ORDER BY name;" 2>&1
  } | sha256sum | cut -d' ' -f1
}
STAMP=$LAB_STATE/setup.stamp
if [[ -f $STAMP && $(cat "$STAMP") == "$(stamp_now)" ]]; then
  say "schemas + keystone setup unchanged since the last successful up.sh ($STAMP): skipped"
else
  rm -f "$STAMP"
  say "db sync + keystone bootstrap/users/catalog, nova cells: keystone, cinder, placement, nova in parallel"
  declare -A steps=()
  for s in keystone cinder placement nova; do
    ( set -e; t=${EPOCHREALTIME//[.,]/}; "step_$s"
      d=$(( ${EPOCHREALTIME//[.,]/} - t )); echo "$s: done in $((d / 1000000)).$((d / 100000 % 10))s" ) >"$LAB_LOG/$s-db.log" 2>&1 9>&- &
    steps[$s]=$!
  done
  for s in keystone cinder placement nova; do
    wait "${steps[$s]}" || fail "$s-db" "$s schema/setup step failed"
  done
  say "schemas done ($(for s in keystone cinder placement nova; do tail -n 1 "$LAB_LOG/$s-db.log"; done | tr '\n' ' '))"
fi

# ------------------------------------------------------------------ services
cd "$LAB_STATE"   # never the (read-only) script folder
start() {   # start NAME PORT|- CMD...
  local name=$1 port=$2; shift 2
  if lab_running "$name"; then say "$name already running (pid $(cat "$LAB_RUN/$name.pid"))"; return; fi
  rm -f "$LAB_RUN/$name.pid"
  if [[ $port != - ]] && port_open "$port"; then
    fail "$name" "127.0.0.1:$port is already in use by a process this state dir did not start (another lab? stop it with its down.sh)"
  fi
  local f   # this start's logs start empty; the previous ones are kept as *.1
  for f in $(logs_for "$name"); do [[ -e $f ]] && mv -f "$f" "$f.1"; done
  setsid nohup "$@" >"$LAB_LOG/$name.out" 2>&1 </dev/null 9>&- &
  echo $! >"$LAB_RUN/$name.pid"
  disown $!
  say "started $name (pid $!)"
}
check() {   # check COMPONENT... (tools/check_up.py; on failure name the component + its log tail)
  rm -f "$LAB_RUN/check.failed"
  if ! "$LAB_PY" "$LAB_SRC/tools/check_up.py" --fail-file "$LAB_RUN/check.failed" "$@" 9>&-; then
    local m c
    m=$(cat "$LAB_RUN/check.failed" 2>/dev/null || echo "FAILED $1: check_up.py crashed")
    c=${m#FAILED }; c=${c%%:*}
    fail "$c" "${m#FAILED "$c": }"
  fi
}
# Ceph flavour: the cluster must answer before cinder-volume starts (its rbd backend connects
# once, at start), libvirtd (+ the cephx secret) before nova-compute2.
if ((CEPH)); then
  # (a subshell with its own errexit: `f || fail` would run f with errexit ignored)
  set +e; ( set -e; ceph_up ) >>"$LAB_LOG/ceph.log" 2>&1 9>&-; rc=$?; set -e
  ((rc == 0)) || fail ceph "the Ceph cluster did not come up (state $OPENSTACK_LAB_CEPH_DIR)"
  read -r _id _addr <"$OPENSTACK_LAB_CEPH_DIR/mon.current"
  say "ceph: HEALTH $(lab_ceph health 2>&1 | cut -c1-60), mon.$_id at $(ceph_monv "$_addr"), conf $OPENSTACK_LAB_CEPH_CONF"
  m=$(qemu_ceph_conf_write 2>&1) || fail ceph "writing $LAB_QEMU_CEPH_CONF failed: $m"
  [[ -n $m ]] && say "ceph: $m"
  set +e; ( set -e; libvirt_up ) >>"$LAB_LOG/libvirt.log" 2>&1 9>&-; rc=$?; set -e
  ((rc == 0)) || fail libvirt "libvirtd/virtlogd or the cephx secret failed"
  say "libvirt: libvirtd $(cat "$LAB_RUN/libvirtd.pid"), virtlogd $(cat "$LAB_RUN/virtlogd.pid"), secret $OPENSTACK_LAB_CEPH_SECRET_UUID, virt_type $OPENSTACK_LAB_LIBVIRT_VIRT_TYPE${OPENSTACK_LAB_LIBVIRT_CPU_FLAGS:+, cpu_model_extra_flags $OPENSTACK_LAB_LIBVIRT_CPU_FLAGS}"
  CINDER_EXTRA_CONF=(--config-file "$LAB_ETC/cinder-rbd.conf")
else
  CINDER_EXTRA_CONF=()
fi
KSP=$OPENSTACK_LAB_KEYSTONE_PORT PLP=$OPENSTACK_LAB_PLACEMENT_PORT CIP=$OPENSTACK_LAB_CINDER_PORT MCP=$OPENSTACK_LAB_MEMCACHED_PORT

# Token caches, as every production cloud runs them: Keystone's own [cache] and Cinder's
# keystonemiddleware ([keystone_authtoken] memcached_servers). Without them each Cinder call
# waits for a full token validation and both tools under test measure Keystone, not themselves.
start memcached "$MCP" /usr/bin/memcached -u memcache -l 127.0.0.1 -p "$MCP" -U 0 -m 64

# All but nova-compute at once (each takes seconds of CPU to import). uwsgi --http-socket closes
# the connection without 'Connection: close'; keystoneauth would then reuse a dead socket
# (ConnectionResetError 104) -> add the header.
start keystone "$KSP" uwsgi --plugin python3 --http-socket "127.0.0.1:$KSP" --master --die-on-term \
      --processes 2 --threads 1 --lazy-apps --add-header 'Connection: close' \
      --wsgi-file /usr/bin/keystone-wsgi-public \
      --env "OS_KEYSTONE_CONFIG_FILES=$LAB_ETC/keystone.conf" --logto "$LAB_LOG/keystone-uwsgi.log"
start placement "$PLP" uwsgi --plugin python3 --http-socket "127.0.0.1:$PLP" --master --die-on-term \
      --processes 1 --threads 1 --add-header 'Connection: close' --wsgi-file "$LAB_SRC/tools/placement_wsgi.py" \
      --env "OS_PLACEMENT_CONFIG_DIR=$LAB_ETC/placement" --logto "$LAB_LOG/placement-uwsgi.log"
start cinder-api "$CIP" "$LAB_PY" -c 'import sys; from cinder.cmd.api import main; sys.argv[0]="cinder-api"; sys.exit(main())' \
      --config-file "$LAB_ETC/cinder.conf" "${CINDER_EXTRA_CONF[@]}" --log-file "$LAB_LOG/cinder-api.log"
start cinder-scheduler - "$LAB_PY" -c 'import sys; from cinder.cmd.scheduler import main; sys.argv[0]="cinder-scheduler"; sys.exit(main())' \
      --config-file "$LAB_ETC/cinder.conf" "${CINDER_EXTRA_CONF[@]}" --log-file "$LAB_LOG/cinder-scheduler.log"
start cinder-volume - "$LAB_PY" -c 'import sys; from cinder.cmd.volume import main; sys.argv[0]="cinder-volume"; sys.exit(main())' \
      --config-file "$LAB_ETC/cinder.conf" "${CINDER_EXTRA_CONF[@]}" --log-file "$LAB_LOG/cinder-volume.log"
start nova-conductor - "$LAB_PY" -c 'import sys; from nova.cmd.conductor import main; sys.argv[0]="nova-conductor"; sys.exit(main())' \
      --config-file "$LAB_ETC/nova.conf" --log-file "$LAB_LOG/nova-conductor.log" --debug
check keystone
# nova-compute dies at start without a placement endpoint in the catalog, and reports its
# resource provider there: start it once placement answers.
check placement
start nova-compute - "$LAB_PY" -c 'import sys; from nova.cmd.compute import main; sys.argv[0]="nova-compute"; sys.exit(main())' \
      --config-file "$LAB_ETC/nova.conf" --log-file "$LAB_LOG/nova-compute.log" --debug
if ((CEPH)); then
  start neutron-stub "$OPENSTACK_LAB_NEUTRON_PORT" "$LAB_PY" "$LAB_SRC/tools/neutron_stub.py" "$OPENSTACK_LAB_NEUTRON_PORT" "$LAB_ETC/"
  start nova-compute2 - "$LAB_PY" -c 'import sys; from nova.cmd.compute import main; sys.argv[0]="nova-compute"; sys.exit(main())' \
        --config-file "$LAB_ETC/nova.conf" --config-file "$LAB_ETC/nova-compute2.conf" \
        --log-file "$LAB_LOG/nova-compute2.log" --debug
fi
check cinder-api
"$LAB_PY" "$LAB_SRC/tools/cinder_setup.py" 60 >>"$LAB_LOG/cinder-setup.log" 2>&1 9>&- || fail cinder-api "lifting the default quota class failed"
if ((CEPH)); then   # volume types fake (the default type in this flavour) and rbd
  "$LAB_PY" "$LAB_SRC/tools/ceph_setup.py" >>"$LAB_LOG/cinder-setup.log" 2>&1 9>&- || fail cinder-api "volume types fake / rbd failed"
fi
check cinder nova-conductor nova-compute
((CEPH)) && check cinder-rbd nova-compute2
n=$("${MYSQL[@]}" -N -e "SELECT COUNT(*) FROM \`$OPENSTACK_LAB_DB_NOVA_API\`.host_mappings WHERE host='compute1'")
((CEPH)) && n=$((n * $("${MYSQL[@]}" -N -e "SELECT COUNT(*) FROM \`$OPENSTACK_LAB_DB_NOVA_API\`.host_mappings WHERE host='compute2'")))
if [[ $n == 0 ]]; then
  NM cell_v2 discover_hosts --verbose >>"$LAB_LOG/nova-discover.log" 2>&1 9>&- || fail nova-discover "cell_v2 discover_hosts failed"
  say "cell_v2 discover_hosts: compute1$( ((CEPH)) && echo ' + compute2') mapped to cell1"
fi
[[ -f $STAMP ]] || stamp_now >"$STAMP"
say "lab is up: keystone $OPENSTACK_LAB_KEYSTONE_URL  cinder $OPENSTACK_LAB_CINDER_URL  placement $OPENSTACK_LAB_PLACEMENT_URL"
say "  rabbit $OPENSTACK_LAB_TRANSPORT_URL  nova.conf $OPENSTACK_LAB_NOVA_CONF  ($(tr '\n' ' ' <"$LAB_LOG/versions.txt"))"
