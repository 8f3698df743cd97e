import { isSecretKey, MASK } from './mask-secrets';

// Last line of defence for free text (error messages, tracebacks, warnings): every secret value
// we know (passwords from nova.conf, the arguments and the cell URLs, as written and
// percent-encoded) is replaced wherever it appears, and so is the password part of any URL.
// Nothing else is touched: "(using password: YES)" from MySQL stays whole, because what
// follows a word such as "password" is not necessarily a secret.

const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s,]*:)([^@\s]*)(@)/gi;

export class TextScrubber {
  private readonly secrets = new Set<string>();

  /** Remember a secret value (passwords from nova.conf or the arguments). */
  add(secret: string | undefined | null): void {
    if (!secret) return;
    this.secrets.add(secret);
    // A value with continuation lines (oslo.config) may be echoed a line at a time.
    if (/[\r\n]/.test(secret)) for (const line of secret.split(/\r?\n/)) if (line.trim().length >= 4) this.secrets.add(line.trim());
  }

  /** Remember every value held under a secret key (as maskSecrets names them), at any depth. */
  addSecretsOf(value: unknown): void {
    if (Array.isArray(value)) for (const v of value) this.addSecretsOf(v);
    else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        // An application_credential_name names a secret; it is not one.
        if (isSecretKey(k) && !k.endsWith('_name') && (typeof v === 'string' || typeof v === 'number')) this.add(String(v));
        else this.addSecretsOf(v);
      }
    }
  }

  scrub(text: string): string {
    let out = text.replace(URL_PASSWORD, `$1${MASK}$3`);
    // Longest first, so a secret that contains another is hidden whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) {
      out = out.split(s).join(MASK);
      const encoded = percentEncoded(s);
      if (encoded !== s) out = out.split(encoded).join(MASK);
    }
    return out;
  }
}

/** encodeURIComponent throws on a lone surrogate (a hostile value): such a value has no URL form. */
function percentEncoded(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return s;
  }
}
