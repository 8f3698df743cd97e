// What both demos share: their headings, and running the collection's playbooks from this
// checkout by FQCN, as an operator runs them.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const bold = (t) => (process.stdout.isTTY ? `\x1b[1m${t}\x1b[0m` : t);
export const say = (t) => console.log(`\n${bold(`== ${t}`)}`);

/**
 * Installs the collection (a link to ansible/ under `dir`) and writes the playbooks' variables.
 * Returns where they are, and `command`: a playbook's command line as [command, argv, spawn options].
 */
export function playbookRunner(dir, vars) {
  const collections = join(dir, 'collections');
  mkdirSync(join(collections, 'ansible_collections', 'osops'), { recursive: true });
  symlinkSync(join(root, 'ansible'), join(collections, 'ansible_collections', 'osops', 'nova'));
  const varsPath = join(dir, 'vars.json');
  writeFileSync(varsPath, JSON.stringify({ ...vars, ansible_node_interpreter: process.execPath }));
  const command = (args) => [
    'ansible-playbook',
    [...args, '-e', `@${varsPath}`, '-i', 'localhost,', '-c', 'local'],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        ANSIBLE_COLLECTIONS_PATH: collections,
        ANSIBLE_NOCOLOR: process.stdout.isTTY ? '0' : '1',
        ANSIBLE_LOCALHOST_WARNING: 'false',
        ANSIBLE_RETRY_FILES_ENABLED: 'false',
      },
    },
  ];
  return { command, collections, varsPath };
}
