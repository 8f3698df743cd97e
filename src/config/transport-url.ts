import { BadInput } from '../errors';

/** One RabbitMQ broker of an oslo.messaging transport URL. */
export interface Broker {
  host: string;
  port: number;
  username: string;
  password: string;
}

export interface TransportSettings {
  brokers: Broker[];
  virtualHost: string;
  /** [oslo_messaging_rabbit] options given in the URL query (they override nova.conf). */
  query: Record<string, string>;
}

/**
 * oslo.messaging's TransportURL: rabbit://user:pass@host:port[,user2:pass2@host2:port2]/vhost?opts.
 * User and password are percent-decoded; a missing port is 5672 even with TLS (as oslo does);
 * `/` as the whole path means the default vhost.
 */
export function parseTransportUrl(url: string, what: string): TransportSettings {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(url.trim());
  if (!m) throw new BadInput(`${what} is not a valid transport URL`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'rabbit' && scheme !== 'kombu+rabbit') {
    throw new BadInput(`${what} uses the "${scheme}" driver; only rabbit:// transport URLs are supported`);
  }
  const brokers = (m[2] || 'localhost').split(',').map((part): Broker => {
    const at = part.lastIndexOf('@');
    const userinfo = at >= 0 ? part.slice(0, at) : '';
    const hostport = at >= 0 ? part.slice(at + 1) : part;
    const [user, ...pass] = userinfo.split(':');
    let host = hostport;
    let port = 5672;
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(hostport);
    if (v6) {
      host = v6[1]!;
      if (v6[2]) port = Number(v6[2]);
    } else if (hostport.includes(':')) {
      host = hostport.slice(0, hostport.lastIndexOf(':'));
      const p = hostport.slice(hostport.lastIndexOf(':') + 1);
      if (p !== '') {
        if (!/^\d+$/.test(p)) throw new BadInput(`${what} has an invalid port`);
        port = Number(p);
      }
    }
    return {
      host: host || 'localhost',
      port,
      username: userinfo ? decodeURIComponent(user ?? '') : 'guest',
      password: userinfo ? decodeURIComponent(pass.join(':')) : 'guest',
    };
  });
  const rawPath = (m[3] ?? '').replace(/^\//, '');
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(m[4] ?? '')) query[k] = v;
  return { brokers, virtualHost: decodeURIComponent(rawPath) || '/', query };
}
