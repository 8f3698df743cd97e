import Ajv, { type ValidateFunction } from 'ajv';
import { connectorSchema, type Connector } from '../connector';
import { argsSchema, type ModuleArgs } from './schema';

// Compiled at run time here (tests, tsc); the bundle build swaps this file for the same schemas
// precompiled by Ajv's standalone code generator, which saves ~80 ms of start-up per run.

export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: true } as const;

export function createAjv(options: ConstructorParameters<typeof Ajv>[0] = {}): Ajv {
  const ajv = new Ajv({ ...AJV_OPTIONS, ...options });
  ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
  ajv.addSchema(argsSchema);
  ajv.addSchema(connectorSchema);
  return ajv;
}

/** Schema $id of each exported validator (the build uses the same map). */
export const VALIDATORS = { validateArgs: argsSchema.$id, validateConnector: connectorSchema.$id } as const;

const ajv = createAjv();
export const validateArgs = ajv.getSchema(argsSchema.$id) as ValidateFunction<ModuleArgs>;
export const validateConnector = ajv.getSchema(connectorSchema.$id) as ValidateFunction<Connector>;
