import { readFileSync, statSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse, type Method } from 'axios';
import { BadInput, NovaBdmError } from '../errors';

/** An OpenStack HTTP API failed or could not be reached. */
export class OpenStackHttpError extends NovaBdmError {
  override name = 'OpenStackHttpError';
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

export interface HttpSettings {
  /** PEM bundle to verify servers against ([cinder] cafile). */
  cafile?: string;
  /** Skip TLS verification ([cinder] insecure); off by default. */
  insecure: boolean;
  timeoutSeconds: number;
  /** Retries of connection failures only ([cinder] http_retries), like keystoneauth. */
  connectRetries: number;
}

/** One axios instance with explicit timeouts and TLS verification on by default. */
export class OpenStackHttp {
  private readonly axios: AxiosInstance;

  constructor(private readonly settings: HttpSettings) {
    let ca: Buffer | undefined;
    if (settings.cafile) {
      try {
        // stat first: a FIFO named here would block the read for ever
        if (!statSync(settings.cafile).isFile()) throw new Error('not a regular file');
        ca = readFileSync(settings.cafile);
      } catch {
        throw new BadInput(`cannot read the CA file ${settings.cafile}`);
      }
    }
    this.axios = axios.create({
      timeout: Math.round(settings.timeoutSeconds * 1000),
      // No keep-alive: a run makes a handful of calls, and idle sockets would keep the process alive.
      httpsAgent: new HttpsAgent({ ca, rejectUnauthorized: !settings.insecure, keepAlive: false }),
      httpAgent: new HttpAgent({ keepAlive: false }),
      validateStatus: () => true,
      maxRedirects: 0,
      transitional: { clarifyTimeoutError: true },
      responseType: 'json',
    });
  }

  async request(method: Method, url: string, headers: Record<string, string>, body?: unknown): Promise<AxiosResponse> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.axios.request({ method, url, headers, data: body === undefined ? undefined : JSON.stringify(body) });
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        const retriable = ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'EAI_AGAIN'].includes(code);
        if (retriable && attempt < this.settings.connectRetries) {
          await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
          continue;
        }
        throw new OpenStackHttpError(`cannot reach ${hostOf(url)}: ${describeNetworkError(err)}`, null);
      }
    }
  }
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ETIMEDOUT':
    case 'ECONNABORTED':
      return 'timed out';
    case 'ENOTFOUND':
      return 'host name not found';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'CERT_HAS_EXPIRED':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS verification failed (${e.code}); set [cinder] cafile`;
    default:
      return (e.message ?? String(err)).split('\n')[0]!;
  }
}

/** Cinder/Keystone error bodies: {"<faultName>": {"code": .., "message": ".."}} or {"error": {...}}. */
export function faultMessage(res: AxiosResponse): string {
  const body = res.data as Record<string, { message?: string; title?: string }> | undefined;
  if (body && typeof body === 'object') {
    const [name, fault] = Object.entries(body)[0] ?? [];
    if (fault && typeof fault === 'object' && fault.message) return `${name}: ${String(fault.message).split('\n')[0]}`;
  }
  return `HTTP ${res.status}`;
}
