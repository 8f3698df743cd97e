import { osloBool, osloNumber, type NovaConf } from '../config/nova-conf';
import { parseTransportUrl } from '../config/transport-url';
import type { RabbitSettings } from './oslo-rpc-client';
import { BadInput } from '../errors';

/**
 * RabbitMQ settings for a cell: its (formatted) transport URL, with [oslo_messaging_rabbit]
 * options from nova.conf overridden by the URL's query, as oslo.messaging does.
 */
export function rabbitSettings(conf: NovaConf, transportUrl: string, what: string): RabbitSettings {
  const transport = parseTransportUrl(transportUrl, what);
  const opt = (key: string): string | undefined => transport.query[key] ?? conf.get('oslo_messaging_rabbit', key);
  // A URL query value wins over nova.conf; both are read with oslo.config's types.
  const fromQuery = <T>(key: string, convert: (v: string) => T | undefined, kind: string): T | undefined => {
    const v = transport.query[key];
    if (v === undefined) return undefined;
    const converted = convert(v);
    if (converted === undefined) throw new BadInput(`${what}: option ${key}=${v} in the URL is not a ${kind}`);
    return converted;
  };
  const bool = (key: string, fallback: boolean) =>
    fromQuery(key, osloBool, 'boolean') ?? conf.getBool('oslo_messaging_rabbit', key, fallback);
  const num = (key: string, fallback: number) =>
    fromQuery(key, osloNumber, 'number') ?? conf.getNumber('oslo_messaging_rabbit', key, fallback);
  const ssl = bool('ssl', false);
  return {
    transport,
    exchange: conf.get('DEFAULT', 'control_exchange') ?? 'nova',
    durable: bool('amqp_durable_queues', false) || bool('rabbit_quorum_queue', false),
    autoDelete: bool('amqp_auto_delete', false),
    heartbeatSeconds: num('heartbeat_timeout_threshold', 60),
    transientQueuesTtlSeconds: num('rabbit_transient_queues_ttl', 1800),
    haQueues: bool('rabbit_ha_queues', false),
    tls: ssl
      ? {
          ca: opt('ssl_ca_file') || undefined,
          cert: opt('ssl_cert_file') || undefined,
          key: opt('ssl_key_file') || undefined,
          verifyHostname: bool('ssl_enforce_hostname_verification', false),
        }
      : undefined,
  };
}
