import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import * as amqp from 'amqplib';
import type { Broker, TransportSettings } from '../config/transport-url';
import { BadInput, NovaBdmError } from '../errors';

// oslo.messaging 14 RPC `call` over RabbitMQ (openstack/oslo.messaging
// oslo_messaging/_drivers/amqpdriver.py, impl_rabbit.py): the 2.0
// envelope, exchange and queue flags as oslo declares them, one reply queue per client,
// replies demultiplexed by _msg_id, heartbeats (ending=false) until the final reply.

export interface RabbitSettings {
  transport: TransportSettings;
  /** [DEFAULT] control_exchange; nova's default is "nova". */
  exchange: string;
  /** amqp_durable_queues or rabbit_quorum_queue. */
  durable: boolean;
  autoDelete: boolean;
  /** heartbeat_timeout_threshold (s); 0 disables. */
  heartbeatSeconds: number;
  /** rabbit_transient_queues_ttl (s): x-expires of the reply queue. */
  transientQueuesTtlSeconds: number;
  haQueues: boolean;
  tls?: { ca?: string; cert?: string; key?: string; verifyHostname: boolean };
}

/** The compute could not be reached, or did not answer. */
export class RpcUnavailable extends NovaBdmError {
  override name = 'RpcUnavailable';
}

/** The remote method raised: oslo's `failure` payload. */
export class RemoteFailure extends NovaBdmError {
  override name = 'RemoteFailure';
  constructor(
    readonly remoteClass: string,
    readonly remoteModule: string,
    readonly remoteMessage: string,
    readonly kwargs: Record<string, unknown>,
  ) {
    super(`${remoteClass}: ${remoteMessage}`);
  }
}

interface Waiter {
  resolve(result: unknown): void;
  reject(err: Error): void;
  result: unknown;
  onHeartbeat(): void;
}

const hex = () => randomUUID().replace(/-/g, '');

interface CallOptions {
  timeoutSeconds: number;
  /** oslo's call_monitor_timeout: the compute heartbeats while it works; null: no monitor. */
  callMonitorSeconds: number | null;
}

/** The oslo.messaging 2.0 envelope: the message with its reply address and the request context as _context_ keys. */
function envelope(
  request: { method: string; args: Record<string, unknown>; version: string },
  context: Record<string, unknown>,
  reply: { msgId: string; replyQueue: string; callMonitorSeconds: number | null },
): string {
  const inner: Record<string, unknown> = {
    method: request.method,
    args: request.args,
    version: request.version,
    _msg_id: reply.msgId,
    _reply_q: reply.replyQueue,
    _timeout: reply.callMonitorSeconds,
    _unique_id: hex(),
  };
  for (const [k, v] of Object.entries(context)) inner[`_context_${k}`] = v;
  return JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(inner) });
}

export class OsloRpcClient {
  private replyQueue?: string;
  private readonly waiters = new Map<string, Waiter>();
  private readonly seenUniqueIds: string[] = [];
  private exchangeDeclared = false;
  private closed = false;

  private constructor(
    private readonly connection: amqp.ChannelModel,
    private readonly channel: amqp.ConfirmChannel,
    private readonly settings: RabbitSettings,
    /** "rabbit host:port/vhost" for messages (no credentials). */
    readonly where: string,
  ) {
    connection.on('error', () => undefined); // surfaced through the pending call instead
    connection.on('close', () => this.failAll(new RpcUnavailable(`connection to ${where} closed`)));
  }

  /** Connects to the first broker that answers, in oslo's shuffled order. */
  static async connect(settings: RabbitSettings, connectTimeoutMs: number): Promise<OsloRpcClient> {
    const brokers = shuffle(settings.transport.brokers);
    const errors: string[] = [];
    for (const broker of brokers) {
      const where = describeBroker(broker, settings.transport.virtualHost);
      try {
        const connection = await amqp.connect(
          {
            protocol: settings.tls ? 'amqps' : 'amqp',
            hostname: broker.host,
            port: broker.port,
            username: broker.username,
            password: broker.password,
            vhost: settings.transport.virtualHost,
            heartbeat: settings.heartbeatSeconds,
          },
          {
            timeout: connectTimeoutMs,
            ...tlsSocketOptions(settings.tls, broker.host),
            clientProperties: { connection_name: `nova-bdm:${process.pid}:${randomUUID()}` },
          },
        );
        try {
          const channel = await connection.createConfirmChannel();
          channel.on('error', () => undefined);
          return new OsloRpcClient(connection, channel, settings, where);
        } catch (err) {
          await connection.close().catch(() => undefined);
          throw err;
        }
      } catch (err) {
        errors.push(`${where}: ${describeAmqpError(err)}`);
      }
    }
    throw new RpcUnavailable(`cannot connect to RabbitMQ (${errors.join('; ')})`);
  }

  /**
   * Is anyone consuming this queue? A passive check on its own channel, because a missing
   * queue closes the channel it was asked on.
   */
  async consumersOf(queue: string): Promise<number> {
    const ch = await this.connection.createChannel();
    ch.on('error', () => undefined);
    try {
      const q = await ch.checkQueue(queue);
      return q.consumerCount;
    } catch {
      return 0;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** An oslo `call`: publish, then wait for the final reply (ending=true) or time out. */
  async call(
    routingKey: string,
    request: { method: string; args: Record<string, unknown>; version: string },
    context: Record<string, unknown>,
    options: CallOptions,
  ): Promise<unknown> {
    const replyQueue = await this.ensureReplyQueue();
    await this.ensureExchange();
    const msgId = hex();
    const body = envelope(request, context, { msgId, replyQueue, callMonitorSeconds: options.callMonitorSeconds });
    const timeoutMs = Math.round(options.timeoutSeconds * 1000);
    // Waiting before publishing: a reply can never arrive before its waiter.
    const reply = this.awaitReply(msgId, options, timeoutMs);
    try {
      await this.publish(routingKey, body, timeoutMs);
    } catch (err) {
      this.waiters.get(msgId)?.reject(err as Error);
    }
    return reply;
  }

  /**
   * The final reply to msgId, or RpcUnavailable after timeoutSeconds, or after callMonitorSeconds
   * without a heartbeat (oslo's call monitor; it heartbeats only from 2 s up).
   */
  private awaitReply(msgId: string, options: CallOptions, timeoutMs: number): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      let overall: NodeJS.Timeout | undefined;
      let monitor: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(overall);
        clearTimeout(monitor);
        this.waiters.delete(msgId);
      };
      const armMonitor = () => {
        if (options.callMonitorSeconds === null || options.callMonitorSeconds < 2) return;
        clearTimeout(monitor);
        monitor = setTimeout(() => {
          done();
          reject(new RpcUnavailable(`no heartbeat from the compute for ${options.callMonitorSeconds} s (message ID ${msgId})`));
        }, options.callMonitorSeconds * 1000);
      };
      overall = setTimeout(() => {
        done();
        reject(new RpcUnavailable(`timed out after ${options.timeoutSeconds} s waiting for a reply to message ID ${msgId}`));
      }, timeoutMs);
      armMonitor();
      this.waiters.set(msgId, {
        result: null,
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
        onHeartbeat: armMonitor,
      });
    });
  }

  /** Publishes with the flags oslo's driver sets, once the broker confirmed it. */
  private publish(routingKey: string, body: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.channel.publish(
        this.settings.exchange,
        routingKey,
        Buffer.from(body, 'utf8'),
        {
          contentType: 'application/json',
          contentEncoding: 'utf-8',
          deliveryMode: 2,
          priority: 0,
          headers: {},
          expiration: String(timeoutMs),
          mandatory: false,
        },
        (err) => (err ? reject(new RpcUnavailable(`broker did not accept the request: ${String(err)}`)) : resolve()),
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // oslo leaves its reply queue to x-expires; we delete ours right away.
    if (this.replyQueue) await this.channel.deleteQueue(this.replyQueue).catch(() => undefined);
    await this.connection.close().catch(() => undefined);
  }

  private async ensureExchange(): Promise<void> {
    if (this.exchangeDeclared) return;
    await this.channel.assertExchange(this.settings.exchange, 'topic', {
      durable: this.settings.durable,
      autoDelete: this.settings.autoDelete,
    });
    this.exchangeDeclared = true;
  }

  private async ensureReplyQueue(): Promise<string> {
    if (this.replyQueue) return this.replyQueue;
    const name = `reply_${hex()}`;
    const args: Record<string, unknown> = { 'x-expires': this.settings.transientQueuesTtlSeconds * 1000 };
    if (this.settings.haQueues) args['x-ha-policy'] = 'all';
    await this.channel.assertQueue(name, { durable: false, autoDelete: false, exclusive: false, arguments: args });
    await this.channel.consume(name, (msg) => {
      if (!msg) return;
      this.channel.ack(msg);
      this.onReply(msg.content);
    });
    this.replyQueue = name;
    return name;
  }

  private onReply(content: Buffer): void {
    let reply: Record<string, unknown>;
    try {
      const envelope = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
      reply = (typeof envelope['oslo.message'] === 'string' ? JSON.parse(envelope['oslo.message']) : envelope) as Record<string, unknown>;
    } catch {
      return; // not an oslo reply: oslo logs and drops it too
    }
    const uniqueId = String(reply._unique_id ?? '');
    if (uniqueId && this.seenUniqueIds.includes(uniqueId)) return;
    if (uniqueId) {
      this.seenUniqueIds.push(uniqueId);
      if (this.seenUniqueIds.length > 16) this.seenUniqueIds.shift();
    }
    const waiter = this.waiters.get(String(reply._msg_id));
    if (!waiter) return; // a late reply to a call that already timed out
    if (reply.failure !== null && reply.failure !== undefined) {
      waiter.reject(decodeFailure(reply.failure));
      return;
    }
    if (reply.result !== null && reply.result !== undefined) waiter.result = reply.result;
    if (reply.ending === true) waiter.resolve(waiter.result);
    else waiter.onHeartbeat();
  }

  private failAll(err: Error): void {
    for (const w of [...this.waiters.values()]) w.reject(err);
  }
}

function decodeFailure(failure: unknown): RemoteFailure {
  try {
    const f = (typeof failure === 'string' ? JSON.parse(failure) : failure) as Record<string, unknown>;
    return new RemoteFailure(
      String(f.class ?? 'Exception').replace(/_Remote$/, ''),
      String(f.module ?? ''),
      String(f.message ?? '').split('\n')[0]!,
      (f.kwargs as Record<string, unknown>) ?? {},
    );
  } catch {
    return new RemoteFailure('Exception', '', String(failure).slice(0, 200), {});
  }
}

function shuffle<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function describeBroker(b: Broker, vhost: string): string {
  return `${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}${vhost === '/' ? '/' : `/${vhost}`}`;
}

function describeAmqpError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e.code === 'ECONNREFUSED') return 'connection refused';
  if (e.code === 'ETIMEDOUT' || /timeout/i.test(e.message ?? '')) return 'timed out';
  if (/ACCESS.REFUSED|403/.test(e.message ?? '')) return 'access refused (wrong user or password)';
  if (/NOT.ALLOWED|530/.test(e.message ?? '')) return 'virtual host not allowed or missing';
  return (e.message ?? String(err)).split('\n')[0]!;
}

function tlsSocketOptions(tls: RabbitSettings['tls'], host: string): Record<string, unknown> {
  if (!tls) return {};
  const read = (path: string | undefined) => {
    if (!path) return undefined;
    try {
      // stat first: a FIFO named here would block the read for ever
      if (!statSync(path).isFile()) throw new Error('not a regular file');
      return readFileSync(path);
    } catch {
      throw new BadInput(`cannot read RabbitMQ TLS file ${path}`);
    }
  };
  return {
    ca: read(tls.ca) ? [read(tls.ca)] : undefined,
    cert: read(tls.cert),
    key: read(tls.key),
    servername: host,
    // oslo/py-amqp verify the chain but not the host name unless asked to.
    ...(tls.verifyHostname ? {} : { checkServerIdentity: () => undefined }),
  };
}
