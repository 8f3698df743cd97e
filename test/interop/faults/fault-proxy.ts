import { connect, createServer, type Server, type Socket } from 'node:net';

// A TCP proxy between our tool and one real service, owned by a fault test: it counts
// connections, can run a hook before a connection goes upstream (kill or stop the service
// there), can cut everything and refuse new connections, and can look at the protocol frames
// going either way (AMQP frames, MySQL packets) to cut or rewrite at an exact point.

/** What a frame hook decides: pass the frame on, drop it and cut everything, or send other bytes. */
export type FrameAction = 'pass' | 'cut' | Buffer;
export type FrameHook = (frame: Buffer, connection: number) => FrameAction | Promise<FrameAction>;

/** Splits a byte stream into whole frames; keeps state (e.g. a protocol header) per connection. */
export interface Framer {
  take(buffer: Buffer): { frames: Buffer[]; rest: Buffer };
}

export interface ProxyOptions {
  /** Awaited before connection n (1-based) is opened upstream; the client waits meanwhile. */
  onConnection?: (n: number) => void | Promise<void>;
  /**
   * HTTP (one request per connection: the tool sends no keep-alive): awaited with the request
   * line ("POST /v3/.../attachments HTTP/1.1") once it has arrived, before it goes upstream.
   * A fleet runs calls side by side, so a fault is placed by what the call is, not by its count.
   */
  onHttpRequest?: (requestLine: string, n: number) => void | Promise<void>;
  clientFramer?: () => Framer;
  serverFramer?: () => Framer;
  onClientFrame?: FrameHook;
  onServerFrame?: FrameHook;
}

export class FaultProxy {
  private readonly sockets = new Set<Socket>();
  private server!: Server;
  port = 0;
  /** Connections accepted so far (refused ones included). */
  connections = 0;
  private refusing = false;
  options: ProxyOptions = {};

  private constructor(
    private readonly targetPort: number,
    private readonly targetHost: string,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
    const proxy = new FaultProxy(targetPort, targetHost);
    proxy.server = createServer((client) => void proxy.accept(client));
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', r));
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  /** New hooks and a fresh count for the next case; connections stay as they are. */
  reset(options: ProxyOptions = {}): void {
    this.options = options;
    this.connections = 0;
    this.refusing = false;
  }

  /** Drop every connection and refuse new ones until restore() or reset(). */
  cutAll(): void {
    this.refusing = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.refusing = false;
  }

  get cut(): boolean {
    return this.refusing;
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise((r) => this.server.close(r));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
  }

  private async accept(client: Socket): Promise<void> {
    const n = ++this.connections;
    this.track(client);
    if (this.refusing) {
      client.destroy();
      return;
    }
    client.pause();
    const options = this.options;
    try {
      await options.onConnection?.(n);
    } catch {
      /* the hook's own failure is the test's to report; the connection goes on */
    }
    let head: Buffer | undefined;
    if (options.onHttpRequest) {
      head = await firstLine(client);
      try {
        await options.onHttpRequest(head.toString('latin1').split('\r\n')[0]!, n);
      } catch {
        /* as above */
      }
    }
    if (this.refusing || client.destroyed) {
      client.destroy();
      return;
    }
    const upstream = connect(this.targetPort, this.targetHost);
    this.track(upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    this.pump(client, upstream, options.clientFramer?.(), options.onClientFrame, n);
    this.pump(upstream, client, options.serverFramer?.(), options.onServerFrame, n);
    if (head?.length) upstream.write(head);
    client.resume();
  }

  private pump(from: Socket, to: Socket, framer: Framer | undefined, hook: FrameHook | undefined, n: number): void {
    if (!framer || !hook) {
      from.on('data', (chunk: Buffer) => {
        if (!this.refusing) to.write(chunk);
      });
      return;
    }
    let pending: Buffer = Buffer.alloc(0);
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      const { frames, rest } = framer.take(Buffer.concat([pending, chunk]));
      pending = rest;
      for (const frame of frames) {
        chain = chain.then(async () => {
          if (to.destroyed || this.refusing) return;
          const action = await hook(frame, n);
          if (action === 'cut') this.cutAll();
          else to.write(action === 'pass' ? frame : action);
        });
      }
    });
  }
}

/** Reads from a paused socket until a whole first line (or the end) has come; leaves it paused. */
function firstLine(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = () => {
      socket.off('data', onData);
      socket.off('end', done);
      socket.off('close', done);
      socket.pause();
      resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      if (chunk.includes('\r\n')) done();
    };
    socket.on('data', onData);
    socket.on('end', done);
    socket.on('close', done);
    socket.resume();
  });
}

/** AMQP 0-9-1 frames; the client side starts with the 8-byte protocol header. */
export function amqpFramer(clientSide: boolean): () => Framer {
  return () => {
    let headerLeft = clientSide ? 8 : 0;
    return {
      take(buffer) {
        const frames: Buffer[] = [];
        let at = 0;
        if (headerLeft > 0) {
          if (buffer.length < headerLeft) return { frames, rest: buffer };
          frames.push(buffer.subarray(0, headerLeft));
          at = headerLeft;
          headerLeft = 0;
        }
        while (buffer.length - at >= 7) {
          const size = buffer.readUInt32BE(at + 3);
          if (buffer.length - at < 8 + size) break;
          frames.push(buffer.subarray(at, at + 8 + size));
          at += 8 + size;
        }
        return { frames, rest: buffer.subarray(at) };
      },
    };
  };
}

/** The AMQP method in a frame, e.g. "basic.publish"; null for other frames. */
export function amqpMethod(frame: Buffer): string | null {
  if (frame.length < 12 || frame[0] !== 1) return null;
  const classId = frame.readUInt16BE(7);
  const methodId = frame.readUInt16BE(9);
  const names: Record<string, string> = {
    '60.40': 'basic.publish',
    '60.60': 'basic.deliver',
    '60.20': 'basic.consume',
    '50.10': 'queue.declare',
  };
  return names[`${classId}.${methodId}`] ?? `${classId}.${methodId}`;
}

/** MySQL client packets: 3-byte little-endian length, sequence id, payload. */
export function mysqlFramer(): Framer {
  return {
    take(buffer) {
      const frames: Buffer[] = [];
      let at = 0;
      while (buffer.length - at >= 4) {
        const size = buffer.readUIntLE(at, 3);
        if (buffer.length - at < 4 + size) break;
        frames.push(buffer.subarray(at, at + 4 + size));
        at += 4 + size;
      }
      return { frames, rest: buffer.subarray(at) };
    },
  };
}

/** The SQL of a COM_QUERY packet, else null. */
export function mysqlQuery(packet: Buffer): string | null {
  return packet.length > 5 && packet[4] === 0x03 ? packet.subarray(5).toString('utf8') : null;
}

/** A COM_QUERY packet with other SQL (same sequence id). */
export function mysqlQueryPacket(sqlText: string, sequenceId: number): Buffer {
  const payload = Buffer.concat([Buffer.from([0x03]), Buffer.from(sqlText, 'utf8')]);
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = sequenceId;
  return Buffer.concat([header, payload]);
}
