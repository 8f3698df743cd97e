import Ajv, { type ValidateFunction } from 'ajv';
import { argsSchema, type ModuleArgs } from './schema';

// Compiled at run time here (tests, tsc); the bundle build swaps this file for the same schema
// precompiled by Ajv's standalone code generator, which saves ~80 ms of start-up per run.

export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: true } as const;

export function createAjv(options: ConstructorParameters<typeof Ajv>[0] = {}): Ajv {
  const ajv = new Ajv({ ...AJV_OPTIONS, ...options });
  ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
  return ajv;
}

const validateArgsSchema: ValidateFunction<ModuleArgs> = createAjv().compile<ModuleArgs>(argsSchema);
export default validateArgsSchema;
