import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

// YAML as Ansible reads it: PyYAML's safe_load (Debian's python3-yaml, which ansible-core needs
// anyway), not a JavaScript parser with rules of its own. Dates come back as strings.

/** The YAML text, loaded by PyYAML and handed over as JSON. */
export function parseYaml(text: string): any {
  const out = execFileSync(
    '/usr/bin/python3',
    ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read()), default=str))'],
    { input: text, encoding: 'utf8' },
  );
  return JSON.parse(out);
}

/** The YAML file at `path` (UTF-8), as parseYaml reads it. */
export function loadYaml(path: string): any {
  return parseYaml(readFileSync(path, 'utf8'));
}
