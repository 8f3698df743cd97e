// Secrets inside connection_info (CHAP passwords, Ceph keyrings, tokens) are masked unless the
// user asks for them. The rule, also in the README: a key is secret when its name contains
// password, secret, token, keyring, passphrase or credential (any case, any depth), except
// names ending in _uuid, _id or _type, which only identify a secret (e.g. rbd's secret_uuid).
// A null value stays null so "not set" remains visible.

export const MASK = '********';

const SECRET_NAME = /password|secret|token|keyring|passphrase|credential/i;
const IDENTIFIER_NAME = /_(uuid|id|type)$/i;

export function isSecretKey(key: string): boolean {
  return SECRET_NAME.test(key) && !IDENTIFIER_NAME.test(key);
}

export function maskSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v)) as T;
  if (value === null || typeof value !== 'object') return value;
  // fromEntries defines own properties: a "__proto__" key from JSON stays a (masked) key
  // instead of becoming the prototype and vanishing from the output.
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, isSecretKey(k) && v !== null && v !== undefined ? MASK : maskSecrets(v)]),
  ) as T;
}
