/**
 * Why an interop test is skipped, or false when it runs: under `npm run test:interop`, or with
 * NOVA_BDM_INTEROP=1. `npm test` never brings the lab up.
 */
export const INTEROP_SKIP: string | false =
  process.env.NOVA_BDM_INTEROP === '1' || process.env.npm_lifecycle_event === 'test:interop'
    ? false
    : 'interop tier: run `npm run test:interop` (or set NOVA_BDM_INTEROP=1); needs root, brings up real OpenStack services';
