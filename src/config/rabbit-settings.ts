import type { NovaConf } from './nova-conf';
import { parseTransportUrl } from './transport-url';
import type { RabbitSettings } from '../rpc/oslo-rpc-client';

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);

/**
 * RabbitMQ settings for a cell: its (formatted) transport URL, with [oslo_messaging_rabbit]
 * options from nova.conf overridden by the URL's query, as oslo.messaging does.
 */
export function rabbitSettings(conf: NovaConf, transportUrl: string, what: string): RabbitSettings {
  const transport = parseTransportUrl(transportUrl, what);
  const opt = (key: string): string | undefined => transport.query[key] ?? conf.get('oslo_messaging_rabbit', key);
  const bool = (key: string, fallback: boolean) => {
    const v = opt(key);
    return v === undefined ? fallback : TRUE_WORDS.has(v.toLowerCase());
  };
  const num = (key: string, fallback: number) => {
    const v = Number(opt(key));
    return opt(key) === undefined || !Number.isFinite(v) ? fallback : v;
  };
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
