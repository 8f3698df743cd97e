import * as amqp from 'amqplib';

// A stand-in nova-compute: an oslo.messaging 14 RPC server on the real RabbitMQ, built to
// reference/oslo-messaging-rabbit.md. It declares what oslo's server declares (exchange `nova`,
// queue compute.<host>), answers remove_volume_connection, and on command fails, stays
// silent, sends heartbeats first, or dies.

export type ComputeBehaviour =
  | { kind: 'ok' }
  | { kind: 'fail'; cls: string; module: string; message: string }
  | { kind: 'silent' }
  | { kind: 'slow'; seconds: number };

export interface ReceivedCall {
  routingKey: string;
  properties: amqp.MessageProperties;
  inner: Record<string, unknown>;
}

export class FakeCompute {
  readonly calls: ReceivedCall[] = [];
  behaviour: ComputeBehaviour = { kind: 'ok' };
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
    const call = { routingKey: msg.fields.routingKey, properties: msg.properties, inner };
    this.calls.push(call);
    await this.onCall?.(call);
    const reply = (body: Record<string, unknown>) =>
      this.channel.publish('', String(inner._reply_q), Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify({ ...body, _msg_id: inner._msg_id, _unique_id: crypto.randomUUID().replace(/-/g, '') }) })), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 2,
        priority: 0,
        headers: {},
        mandatory: true,
      });
    const b = this.behaviour;
    switch (b.kind) {
      case 'ok':
        reply({ result: null, failure: null, ending: true });
        return;
      case 'fail':
        reply({
          result: null,
          failure: JSON.stringify({ class: b.cls, module: b.module, message: b.message, tb: ['Traceback (most recent call last):\n', `${b.module}.${b.cls}: ${b.message}\n`], args: [b.message], kwargs: { code: 500 } }),
          ending: true,
        });
        return;
      case 'silent':
        return;
      case 'slow': {
        const beats = Math.floor(b.seconds);
        for (let i = 0; i < beats; i++) {
          await new Promise((r) => setTimeout(r, 1000));
          reply({ result: null, failure: null, ending: false });
        }
        reply({ result: null, failure: null, ending: true });
        return;
      }
    }
  }

  /** Stop consuming (like a compute that died): the queue stays, with no consumer. */
  async stop(): Promise<void> {
    await this.connection.close().catch(() => undefined);
  }

  /** Stop and remove the queue. */
  async destroy(): Promise<void> {
    await this.channel.deleteQueue(`compute.${this.host}`).catch(() => undefined);
    await this.stop();
  }
}
