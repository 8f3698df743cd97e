// The module's one line of JSON, written in slices: an audit's `stale` list of a big fleet would
// otherwise be one string of tens of MB, plus its copy in the write buffer, at the very end of
// the run. Same bytes as JSON.stringify(value) + "\n".

const SLICE = 1000;

export async function writeJsonLine(out: NodeJS.WritableStream, value: object): Promise<void> {
  const write = (chunk: string) =>
    out.write(chunk) ? Promise.resolve() : new Promise<void>((resolve) => out.once('drain', () => resolve()));
  let first = true;
  let pending = '{';
  for (const [key, v] of Object.entries(value)) {
    const head = `${first ? '' : ','}${JSON.stringify(key)}:`;
    if (Array.isArray(v) && v.length > SLICE) {
      await write(`${pending}${head}[`);
      pending = '';
      for (let i = 0; i < v.length; i += SLICE) {
        await write(`${i === 0 ? '' : ','}${JSON.stringify(v.slice(i, i + SLICE)).slice(1, -1)}`);
      }
      pending = ']';
      first = false;
      continue;
    }
    const json = JSON.stringify(v);
    if (json === undefined) continue; // what JSON.stringify leaves out of an object
    pending += `${head}${json}`;
    first = false;
  }
  await write(`${pending}}\n`);
}
