// Nova's CellMapping._format_url: a cell's database_connection / transport_url stored in the
// API DB may be a Python str.format template filled from this host's own [database] connection
// or [DEFAULT] transport_url. Values come from Python's urlparse, so user and password stay
// percent-encoded, the host is lower-cased and a missing port is the text "None".

type Subs = Record<string, string | null>;

function parseNetloc(netloc: string): { username: string | null; password: string | null; hostname: string | null; port: string | null } {
  let userpass = '';
  let hostport = netloc;
  const at = netloc.indexOf('@');
  if (at >= 0) {
    userpass = netloc.slice(0, at);
    hostport = netloc.slice(at + 1);
  }
  let hostname: string | null;
  let port: string | null;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) throw new Error('Invalid IPv6 URL');
    hostname = hostport.slice(1, end);
    port = hostport.slice(end + 1);
  } else if (hostport.includes(':')) {
    const i = hostport.indexOf(':');
    hostname = hostport.slice(0, i);
    port = hostport.slice(i + 1);
  } else {
    hostname = hostport;
    port = null;
  }
  let username: string | null = null;
  let password: string | null = null;
  if (userpass) {
    const c = userpass.indexOf(':');
    if (c >= 0) {
      username = userpass.slice(0, c);
      password = userpass.slice(c + 1);
    } else {
      username = userpass;
    }
  }
  return { username, password, hostname, port };
}

/** Python's urlparse properties of the conf URL, as _format_url uses them. */
function substitutions(confUrl: string): Subs {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(confUrl);
  if (!m) throw new Error('unparsable URL');
  const netloc = m[2]!;
  const userinfo = netloc.includes('@') ? netloc.slice(0, netloc.lastIndexOf('@')) : null;
  const hostinfo = netloc.slice(netloc.lastIndexOf('@') + 1);
  let hostname: string | null;
  let portText: string;
  if (hostinfo.startsWith('[')) {
    const end = hostinfo.indexOf(']');
    hostname = hostinfo.slice(1, end);
    portText = hostinfo.slice(end + 1).replace(/^:/, '');
  } else {
    const c = hostinfo.indexOf(':');
    hostname = c >= 0 ? hostinfo.slice(0, c) : hostinfo;
    portText = c >= 0 ? hostinfo.slice(c + 1) : '';
  }
  if (portText !== '' && !/^\d+$/.test(portText)) throw new Error('invalid port');
  const subs: Subs = {
    username: userinfo === null ? null : userinfo.split(':')[0]!,
    password: userinfo === null || !userinfo.includes(':') ? null : userinfo.slice(userinfo.indexOf(':') + 1),
    hostname: hostname === '' ? null : hostname.toLowerCase(),
    port: portText === '' ? null : String(Number(portText)),
    scheme: m[1]!.toLowerCase(),
    query: m[4] ?? '',
    fragment: m[5] ?? '',
    path: m[3]!.replace(/^\/+/, ''),
  };
  if (netloc.includes(',')) {
    netloc.split(',').forEach((part, i) => {
      for (const [k, v] of Object.entries(parseNetloc(part))) subs[`${k}${i + 1}`] = v;
    });
  }
  return subs;
}

/** Python str.format with plain {name} fields; throws on anything it cannot fill. */
function pyFormat(template: string, subs: Subs): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}|[{}]/g, (token, name: string | undefined) => {
    if (token === '{{') return '{';
    if (token === '}}') return '}';
    if (name === undefined || !(name in subs)) throw new Error(`no value for ${token}`);
    const v = subs[name];
    return v === null || v === undefined ? 'None' : v;
  });
}

/**
 * Fill a cell URL template from this host's conf URL. Like nova, return the stored value
 * unchanged when there is no conf URL or the template cannot be filled.
 */
export function formatCellUrl(stored: string, confUrl: string | undefined): string {
  if (confUrl === undefined || !stored.includes('{')) return stored;
  try {
    return pyFormat(stored, substitutions(confUrl));
  } catch {
    return stored;
  }
}
