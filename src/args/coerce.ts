import { BadInput } from '../errors';

// Option values the way Ansible's AnsibleModule converts them for a Python module
// (ansible/module_utils/common/validation.py: check_type_bool, check_type_int, check_type_float,
// check_type_list, check_type_dict; BOOLEANS_TRUE/BOOLEANS_FALSE in
// ansible/module_utils/parsing/convert_bool.py). Ansible hands a non-Python module what the
// user wrote: `-a key=value`, `-e name=value` and templates give strings. The JSON schema's
// types drive the conversion, so a new option only needs a correct schema; ajv validates after.

/** A schema node, as far as conversion looks at it. */
export interface CoercibleSchema {
  type?: string;
  anyOf?: readonly CoercibleSchema[];
  items?: CoercibleSchema;
  properties?: Readonly<Record<string, CoercibleSchema>>;
  secret?: boolean;
}

const BOOLEANS_TRUE = ['y', 'yes', 'on', '1', 'true', 't'];
const BOOLEANS_FALSE = ['n', 'no', 'off', '0', 'false', 'f'];

/** Ansible's names for the types, which its users read in its own messages. */
const TYPE_NAMES: Record<string, string> = {
  boolean: 'bool',
  integer: 'int',
  number: 'float',
  string: 'str',
  array: 'list',
  object: 'dict',
};

export class CoercionError extends BadInput {
  constructor(
    /** The option (dotted for a sub-option: cinder_auth.insecure). */
    readonly option: string,
    /** Ansible's name of the type the value has (str, int, dict, ...). */
    readonly actualType: string,
    /** Ansible's name of the type wanted (bool, int, list, ...). */
    readonly expected: string,
    /** Why, without the value when the option is secret. */
    readonly detail: string,
  ) {
    super(`argument ${option} is of type ${actualType} and could not be converted to ${expected}: ${detail}`);
  }
}

function typeOf(value: unknown): string {
  if (value === null) return 'None';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  return TYPE_NAMES[typeof value === 'object' ? 'object' : typeof value] ?? typeof value;
}

function fits(value: unknown, type: string | undefined): boolean {
  switch (type) {
    case undefined:
      return true;
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'string':
      return typeof value === 'string';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
    default:
      return false;
  }
}

/** Thrown inside the converters; turned into a CoercionError with the option's name. */
class Unconvertible extends Error {}

function toBool(value: unknown): boolean {
  if (typeof value === 'number') {
    if (value === 1) return true;
    if (value === 0) return false;
  }
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (BOOLEANS_TRUE.includes(word)) return true;
    if (BOOLEANS_FALSE.includes(word)) return false;
  }
  throw new Unconvertible(`not a valid boolean; valid booleans include: ${[...BOOLEANS_TRUE, ...BOOLEANS_FALSE].join(', ')} (in any case)`);
}

function toInt(value: unknown): number {
  if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) return Number(value);
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  throw new Unconvertible('not an integer');
}

function toNumber(value: unknown): number {
  if (typeof value === 'string' && /^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/.test(value)) return Number(value);
  throw new Unconvertible('not a number');
}

function toStr(value: unknown): string {
  // Ansible converts scalars for a str option (5 -> "5", True -> "True"); never a list or dict.
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  throw new Unconvertible('not a scalar');
}

function toList(value: unknown): unknown[] {
  // check_type_list: "a,b" -> [a, b]; a number -> [its text]. Items are trimmed: host names,
  // UUIDs and paths never start or end with blanks, and "a, b" is how people write lists.
  if (typeof value === 'string') return value === '' ? [] : value.split(',').map((s) => s.trim());
  if (typeof value === 'number') return [String(value)];
  throw new Unconvertible('not a list or a comma-separated string');
}

/** check_type_dict: a JSON object, or `k1=v1 k2=v2` / `k1=v1, k2=v2` with optional quotes. */
function toDict(value: unknown): Record<string, unknown> {
  if (typeof value !== 'string') throw new Unconvertible('not a dict, a JSON object string or k1=v1 k2=v2');
  const text = value.trim();
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Unconvertible('not valid JSON (it starts with {)');
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Unconvertible('not a JSON object');
    return parsed as Record<string, unknown>;
  }
  const out: Record<string, unknown> = {};
  const fields = splitKeyValues(text);
  if (fields.length === 0) throw new Unconvertible('not a dict, a JSON object string or k1=v1 k2=v2');
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw new Unconvertible('not k1=v1 k2=v2 (every field needs a key and an =)');
    out[field.slice(0, eq).trim()] = field.slice(eq + 1);
  }
  return out;
}

/** Fields separated by blanks or commas, honouring '...' and "..." and backslash escapes. */
function splitKeyValues(text: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      field += text[++i];
    } else if (quote) {
      if (c === quote) quote = undefined;
      else field += c;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === ',' || /\s/.test(c)) {
      if (field !== '') fields.push(field);
      field = '';
    } else {
      field += c;
    }
  }
  if (quote) throw new Unconvertible('not k1=v1 k2=v2 (a quote is not closed)');
  if (field !== '') fields.push(field);
  return fields;
}

const CONVERTERS: Record<string, (value: unknown) => unknown> = {
  boolean: toBool,
  integer: toInt,
  number: toNumber,
  string: toStr,
  array: toList,
  object: toDict,
};

/** One value converted to its schema, recursing into list items and known sub-options. */
function coerceValue(value: unknown, schema: CoercibleSchema, option: string, secret: boolean): unknown {
  if (schema.anyOf) return coerceAnyOf(value, schema.anyOf, option, secret);
  let converted = value;
  if (schema.type !== undefined && !fits(value, schema.type)) {
    const convert = CONVERTERS[schema.type];
    if (!convert) return value;
    try {
      converted = convert(value);
    } catch (err) {
      if (!(err instanceof Unconvertible)) throw err;
      const shown = secret || typeof value === 'object' ? '' : `${JSON.stringify(value)} is `;
      throw new CoercionError(option, typeOf(value), TYPE_NAMES[schema.type] ?? schema.type, `${shown}${err.message}`);
    }
  }
  if (Array.isArray(converted) && schema.items) {
    const items = schema.items;
    return converted.map((item, i) => coerceValue(item, items, `${option}[${i}]`, secret));
  }
  if (schema.properties && fits(converted, 'object')) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(converted as Record<string, unknown>)) {
      const sub = schema.properties[key];
      // A known sub-option set to None is unset, as AnsibleModule has it (volume_id: null).
      if (sub && v === null) continue;
      out[key] = sub ? coerceValue(v, sub, `${option}.${key}`, secret || sub.secret === true) : v;
    }
    return out;
  }
  return converted;
}

/**
 * Several allowed forms (config_file: a path or a list of paths): a value that already has one
 * of the types stays; a string with a comma becomes the list (the only way `-a` can give one);
 * otherwise the first form it converts to wins.
 */
function coerceAnyOf(value: unknown, branches: readonly CoercibleSchema[], option: string, secret: boolean): unknown {
  const list = branches.find((b) => b.type === 'array');
  if (typeof value === 'string' && value.includes(',') && list) return coerceValue(value, list, option, secret);
  const fitting = branches.find((b) => fits(value, b.type));
  if (fitting) return coerceValue(value, fitting, option, secret);
  let first: unknown;
  for (const branch of branches) {
    try {
      return coerceValue(value, branch, option, secret);
    } catch (err) {
      if (!(err instanceof CoercionError)) throw err;
      first ??= err;
    }
  }
  const expected = branches.map((b) => TYPE_NAMES[b.type ?? ''] ?? b.type).join(' or ');
  throw new CoercionError(option, typeOf(value), expected, (first as CoercionError | undefined)?.detail ?? 'no allowed form');
}

/**
 * Converts each option the schema knows to the schema's type, as AnsibleModule would; options
 * it does not know and values that already fit pass through unchanged (ajv judges them next).
 */
export function coerceOptions(
  options: Record<string, unknown>,
  properties: Readonly<Record<string, CoercibleSchema>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    const schema = properties[name];
    out[name] = schema && value !== null && value !== undefined ? coerceValue(value, schema, name, schema.secret === true) : value;
  }
  return out;
}
