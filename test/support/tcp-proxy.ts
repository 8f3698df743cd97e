import { connect, createServer, type Server, type Socket } from 'node:net';

/** A TCP proxy to a real server that a test can cut at any moment (a database lost mid-flow). */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server!: Server;
  port = 0;
  private cut = false;

  /** `drip`: pass the server's answers on at most `bytes` per `everyMs` (a slow link), so a cut lands mid-answer. */
  static async start(targetPort: number, targetHost = '127.0.0.1', drip?: { bytes: number; everyMs: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy();
    proxy.server = createServer((client) => {
      if (proxy.cut) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, targetHost);
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on('close', () => proxy.sockets.delete(s));
        s.on('error', () => undefined);
      }
      if (!drip) {
        client.pipe(upstream).pipe(client);
        return;
      }
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        upstream.pause();
        let offset = 0;
        const next = () => {
          if (client.destroyed) return;
          client.write(chunk.subarray(offset, offset + drip.bytes));
          offset += drip.bytes;
          if (offset < chunk.length) setTimeout(next, drip.everyMs);
          else upstream.resume();
        };
        next();
      });
    });
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', r));
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  /** Drop every connection and refuse new ones until restore(). */
  cutAll(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.cut = false;
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise((r) => this.server.close(r));
  }
}
