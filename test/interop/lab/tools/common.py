"""Shared helpers for the lab's Python tools (run with /usr/bin/python3).

Settings come from $OPENSTACK_LAB_DIR/lab.env (default /var/tmp/nova-bdm-interop),
which up.sh writes before it runs any of these tools.
"""
import json
import os
import shlex
import sys
import time

sys.dont_write_bytecode = True


def load_settings():
    d = os.path.abspath(os.environ.get('OPENSTACK_LAB_DIR') or '/var/tmp/nova-bdm-interop')
    path = os.path.join(d, 'lab.env')
    if not os.path.exists(path):
        sys.exit('interop lab: %s not found: run up.sh first (OPENSTACK_LAB_DIR=%s)' % (path, d))
    s = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith('export '):
                line = line[len('export '):]
            if '=' in line:
                k, v = line.split('=', 1)
                s[k] = shlex.split(v)[0] if v else ''
    return s


S = load_settings()
KS = S['OPENSTACK_LAB_KEYSTONE_URL']


_SESSIONS = {}


def ks_sess(user='admin', password='admin', project='admin'):
    """A keystoneauth session, one per (user, project) and process: the token is reused
    (this Keystone has no cache; every token issue/validation costs ~0.5-1 s)."""
    key = (user, password, project)
    if key not in _SESSIONS:
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3
        auth = v3.Password(auth_url=KS, username=user, password=password,
                           project_name=project, user_domain_id='default',
                           project_domain_id='default')
        _SESSIONS[key] = ks_session.Session(auth=auth)
    return _SESSIONS[key]


def cinder(version='3.44', user='admin', password='admin', project='admin'):
    from cinderclient import client as cinder_client
    return cinder_client.Client(version, session=ks_sess(user, password, project),
                                service_type='volumev3', region_name='RegionOne')


def dbname(logical):
    """'nova' -> the lab's (prefixed) database name."""
    return S['OPENSTACK_LAB_DB_' + logical.upper()]


def db(logical):
    import pymysql
    return pymysql.connect(host='127.0.0.1', user=S['OPENSTACK_LAB_DB_USER'],
                           password=S['OPENSTACK_LAB_DB_PASSWORD'],
                           database=dbname(logical), autocommit=True,
                           cursorclass=pymysql.cursors.DictCursor)


def q(logical, sql, args=()):
    c = db(logical)
    try:
        with c.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        c.close()


def wait_volume(cc, vol_id, want=('available',), timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cc.volumes.get(vol_id)
        if v.status in want:
            return v
        if v.status == 'error':
            raise RuntimeError('volume %s went to error' % vol_id)
        time.sleep(0.5)
    raise RuntimeError('volume %s stuck in %s' % (vol_id, v.status))


def jdump(o):
    return json.dumps(o, indent=2, sort_keys=True, default=str)
