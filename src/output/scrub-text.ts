import { MASK, maskKeyValues } from './mask-secrets';

// Last line of defence for free text (error messages, tracebacks): hide the password part of
// any URL, secret-looking key=value pairs, and every secret value we know from the config.

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

  scrub(text: string): string {
    let out = maskKeyValues(text.replace(URL_PASSWORD, `$1${MASK}$3`));
    // Longest first, so a secret that contains another is hidden whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) {
      out = out.split(s).join(MASK);
      const encoded = encodeURIComponent(s);
      if (encoded !== s) out = out.split(encoded).join(MASK);
    }
    return out;
  }
}
