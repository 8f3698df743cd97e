import * as amqp from 'amqplib';

// A stand-in nova-compute: an oslo.messaging 14 RPC server on the real RabbitMQ, built to
// reference/oslo-messaging-rabbit.md. It declares what oslo's server declares (exchange `nova`,
// queue compute.<host>), answers remove_volume_connection, and on command fails, takes its
// time, hangs in the method, or takes the message and dies. Told its release (a service
// version), it speaks that release's compute RPC version and, from service version 71 on, also
// serves compute-alt.<host>, as nova's second RPC server does; a graceful shutdown then stops
// its compute.<host> server and keeps the compute-alt one. Like oslo's dispatcher
// (rpc/dispatcher.py _watchdog), it sends call-monitor heartbeats only when the call carries
// `_timeout` N with N/2 >= 1, every N/2 seconds while the method runs.

export type ComputeBehaviour =
  | { kind: 'ok' }
  | { kind: 'fail'; cls: string; module: string; message: string }
  /** The process took the message and died: no heartbeat, no reply. */
  | { kind: 'silent' }
  /** The method runs this long, then returns. */
  | { kind: 'slow'; seconds: number }
  /** The method never returns (a stuck libvirt call); the server itself stays alive. */
  | { kind: 'hang' };

export interface ReceivedCall {
  routingKey: string;
  properties: amqp.MessageProperties;
  inner: Record<string, unknown>;
  /** Call-monitor heartbeats sent for this call. */
  heartbeats: number;
  /** When the method returned (Date.now()), if it did. */
  finishedAt?: number;
}

/**
 * nova/objects/service.py SERVICE_VERSION_HISTORY (openstack/nova master) from RPC 6.0 on:
 * the compute RPC version of each nova-compute service version.
 */
export const COMPUTE_RPC_OF_SERVICE_VERSION: Record<number, string> = {
  56: '6.0',
  57: '6.0',
  58: '6.0',
  59: '6.0',
  60: '6.0',
  61: '6.0',
  62: '6.0',
  63: '6.0',
  64: '6.1',
  65: '6.1',
  66: '6.2',
  67: '6.3',
  68: '6.4',
  69: '6.4',
  70: '6.4',
  71: '6.5',
  72: '6.5',
  73: '6.5',
};
/**
 * "Version 71: Compute RPC v6.5: Add 2nd RPC server for compute service" (commit d5ffb58a8d):
 * from here nova-compute also runs an RPC server on topic compute-alt (nova/service.py
 * Service.start, topic_alt from nova/cmd/compute.py).
 */
export const ALT_RPC_SERVER_SINCE = 71;

export class FakeCompute {
  readonly calls: ReceivedCall[] = [];
  behaviour: ComputeBehaviour = { kind: 'ok' };
  /** The newest compute RPC version this compute speaks (as its release would); newer calls get oslo's UnsupportedVersion. */
  maxVersion?: string;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** consumer tags by queue: compute.<host>, and compute-alt.<host> for a 6.5 compute. */
  private readonly consumers = new Map<string, string>();
  /** Runs before the reply (e.g. to end a legacy connection in the stand-in Cinder, or to cut the DB). */
  onCall?: (call: ReceivedCall) => Promise<void> | void;

  private constructor(
    private readonly connection: amqp.ChannelModel,
    private readonly channel: amqp.Channel,
    readonly host: string,
  ) {}

  static async start(host: string, url = 'amqp://guest:guest@127.0.0.1:5672/'): Promise<FakeCompute> {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    await channel.assertExchange('nova', 'topic', { durable: false, autoDelete: false });
    const compute = new FakeCompute(connection, channel, host);
    await compute.serve('compute');
    return compute;
  }

  /** An oslo RPC server on this topic: the queue <topic>.<host> bound to `nova`, consumed. */
  private async serve(topic: 'compute' | 'compute-alt'): Promise<void> {
    const queue = `${topic}.${this.host}`;
    if (this.consumers.has(queue)) return;
    await this.channel.assertQueue(queue, { durable: false, autoDelete: false, exclusive: false });
    await this.channel.bindQueue(queue, 'nova', queue);
    const { consumerTag } = await this.channel.consume(queue, (msg) => {
      if (msg) void this.handle(msg);
    });
    this.consumers.set(queue, consumerTag);
  }

  private async stopServing(topic: 'compute' | 'compute-alt'): Promise<void> {
    const queue = `${topic}.${this.host}`;
    const tag = this.consumers.get(queue);
    if (tag === undefined) return;
    await this.channel.cancel(tag);
    this.consumers.delete(queue);
  }

  /**
   * Run as a nova-compute of this service version: its RPC version from the history, and its
   * RPC servers: compute, and compute-alt from version 71 on. Undefined: back to the default
   * (any version, compute only).
   */
  async runServiceVersion(serviceVersion: number | undefined): Promise<void> {
    await this.serve('compute');
    if (serviceVersion === undefined) {
      this.maxVersion = undefined;
      await this.stopServing('compute-alt');
      return;
    }
    const rpc = COMPUTE_RPC_OF_SERVICE_VERSION[serviceVersion];
    if (!rpc) throw new Error(`the stand-in compute knows no service version ${serviceVersion}`);
    this.maxVersion = rpc;
    if (serviceVersion >= ALT_RPC_SERVER_SINCE) await this.serve('compute-alt');
    else await this.stopServing('compute-alt');
  }

  /** nova/service.py Service.stop: the compute RPC server stops; compute-alt, if any, keeps finishing work. */
  async gracefulShutdown(): Promise<void> {
    await this.stopServing('compute');
  }

  /** The queues this compute consumes now. */
  get servedQueues(): string[] {
    return [...this.consumers.keys()];
  }

  private async handle(msg: amqp.ConsumeMessage): Promise<void> {
    this.channel.ack(msg);
    const envelope = JSON.parse(msg.content.toString('utf8')) as Record<string, string>;
    const inner = JSON.parse(envelope['oslo.message']!) as Record<string, unknown>;
    const call: ReceivedCall = { routingKey: msg.fields.routingKey, properties: msg.properties, inner, heartbeats: 0 };
    this.calls.push(call);
    const reply = (body: Record<string, unknown>) => {
      try {
        this.channel.publish(
          '',
          String(inner._reply_q),
          Buffer.from(
            JSON.stringify({
              'oslo.version': '2.0',
              'oslo.message': JSON.stringify({ ...body, _msg_id: inner._msg_id, _unique_id: crypto.randomUUID().replace(/-/g, '') }),
            }),
          ),
          {
            contentType: 'application/json',
            contentEncoding: 'utf-8',
            deliveryMode: 2,
            priority: 0,
            headers: {},
            mandatory: true,
          },
        );
      } catch {
        // stopped meanwhile: a dead compute sends nothing
      }
    };
    const b: ComputeBehaviour =
      this.maxVersion && newerVersion(String(inner.version), this.maxVersion)
        ? {
            kind: 'fail',
            cls: 'UnsupportedVersion',
            module: 'oslo_messaging.rpc.dispatcher',
            message: `Endpoint does not support RPC version ${inner.version}. Attempted method: ${inner.method}`,
          }
        : this.behaviour;
    if (b.kind === 'silent') {
      await this.onCall?.(call);
      return;
    }
    // The dispatcher's watchdog: int(_timeout) / 2 seconds, only when the client sent one.
    const interval = inner._timeout ? Math.trunc(Number(inner._timeout)) / 2 : 0;
    let watchdog: NodeJS.Timeout | undefined;
    if (interval >= 1) {
      watchdog = setInterval(() => {
        call.heartbeats++;
        reply({ result: null, failure: null, ending: false });
      }, interval * 1000);
      this.timers.add(watchdog);
    }
    try {
      await this.onCall?.(call);
      if (b.kind === 'hang') return; // the watchdog keeps beating until stop()
      if (b.kind === 'slow') await new Promise<void>((r) => this.timers.add(setTimeout(r, b.seconds * 1000)));
    } finally {
      if (b.kind !== 'hang' && watchdog) {
        clearInterval(watchdog);
        this.timers.delete(watchdog);
      }
    }
    call.finishedAt = Date.now();
    if (b.kind === 'fail') {
      reply({
        result: null,
        failure: JSON.stringify({
          class: b.cls,
          module: b.module,
          message: b.message,
          tb: ['Traceback (most recent call last):\n', `${b.module}.${b.cls}: ${b.message}\n`],
          args: [b.message],
          kwargs: { code: 500 },
        }),
        ending: true,
      });
      return;
    }
    reply({ result: null, failure: null, ending: true });
  }

  /** Stop consuming (like a compute that died): the queue stays, with no consumer. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.connection.close().catch(() => undefined);
  }

  /** Stop and remove the queue. */
  async destroy(): Promise<void> {
    await this.channel.deleteQueue(`compute.${this.host}`).catch(() => undefined);
    await this.channel.deleteQueue(`compute-alt.${this.host}`).catch(() => undefined);
    await this.stop();
  }
}

function newerVersion(v: string, than: string): boolean {
  const [a, b] = v.split('.').map(Number) as [number, number];
  const [c, d] = than.split('.').map(Number) as [number, number];
  return a > c || (a === c && b > d);
}
