import * as amqp from 'amqplib';

// A stand-in nova-compute: an oslo.messaging 14 RPC server on the real RabbitMQ, built to
// reference/oslo-messaging-rabbit.md. It declares what oslo's server declares (exchange `nova`,
// queue compute.<host>), answers remove_volume_connection, and on command fails, takes its
// time, hangs in the method, or takes the message and dies. Like oslo's dispatcher
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

export class FakeCompute {
  readonly calls: ReceivedCall[] = [];
  behaviour: ComputeBehaviour = { kind: 'ok' };
  /** The newest compute RPC version this compute speaks (as its release would); newer calls get oslo's UnsupportedVersion. */
  maxVersion?: string;
  private readonly timers = new Set<NodeJS.Timeout>();
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
    const queue = `compute.${host}`;
    await channel.assertQueue(queue, { durable: false, autoDelete: false, exclusive: false });
    await channel.bindQueue(queue, 'nova', queue);
    const compute = new FakeCompute(connection, channel, host);
    await channel.consume(queue, (msg) => {
      if (msg) void compute.handle(msg);
    });
    return compute;
  }

  private async handle(msg: amqp.ConsumeMessage): Promise<void> {
    this.channel.ack(msg);
    const envelope = JSON.parse(msg.content.toString('utf8')) as Record<string, string>;
    const inner = JSON.parse(envelope['oslo.message']!) as Record<string, unknown>;
    const call: ReceivedCall = { routingKey: msg.fields.routingKey, properties: msg.properties, inner, heartbeats: 0 };
    this.calls.push(call);
    const reply = (body: Record<string, unknown>) => {
      try {
        this.channel.publish('', String(inner._reply_q), Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify({ ...body, _msg_id: inner._msg_id, _unique_id: crypto.randomUUID().replace(/-/g, '') }) })), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 2,
        priority: 0,
        headers: {},
        mandatory: true,
      });
      } catch {
        // stopped meanwhile: a dead compute sends nothing
      }
    };
    const b: ComputeBehaviour = this.maxVersion && newerVersion(String(inner.version), this.maxVersion)
      ? { kind: 'fail', cls: 'UnsupportedVersion', module: 'oslo_messaging.rpc.dispatcher', message: `Endpoint does not support RPC version ${inner.version}. Attempted method: ${inner.method}` }
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
        failure: JSON.stringify({ class: b.cls, module: b.module, message: b.message, tb: ['Traceback (most recent call last):\n', `${b.module}.${b.cls}: ${b.message}\n`], args: [b.message], kwargs: { code: 500 } }),
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
    await this.stop();
  }
}

function newerVersion(v: string, than: string): boolean {
  const [a, b] = v.split('.').map(Number) as [number, number];
  const [c, d] = than.split('.').map(Number) as [number, number];
  return a > c || (a === c && b > d);
}
