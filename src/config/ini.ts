// oslo.config's file syntax: [section], "key = value" or "key: value", full-line comments
// with # or ;, and indented continuation lines. Inline "#" is part of the value, as in oslo.
export type IniSections = Map<string, Map<string, string>>;

export function parseIni(text: string, into: IniSections = new Map()): IniSections {
  let section: Map<string, string> | undefined;
  let lastKey: string | undefined;
  for (const rawLine of text.split(/\r?\n/)) {
    if (/^\s*([#;].*)?$/.test(rawLine)) continue;
    if (/^\s/.test(rawLine) && section && lastKey !== undefined) {
      section.set(lastKey, `${section.get(lastKey) ?? ''}\n${rawLine.trim()}`);
      continue;
    }
    const header = /^\[([^\]]+)\]\s*$/.exec(rawLine);
    if (header) {
      const name = header[1]!.trim();
      const key = name.toUpperCase() === 'DEFAULT' ? 'DEFAULT' : name;
      section = into.get(key) ?? new Map();
      into.set(key, section);
      lastKey = undefined;
      continue;
    }
    const pair = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(rawLine);
    if (!pair || !section) continue; // oslo would reject; we only read what we need
    lastKey = pair[1]!.trim().replace(/-/g, '_');
    section.set(lastKey, pair[2]!.trim());
  }
  return into;
}
