// Sequences after which the real blkback never lets go of its device and dom0's xenbus is stuck (a
// backend without "dev" connected to a real blkfront): played last, after every other scenario.
import { blkbackScenario } from './blkback.js';

export const scenario = blkbackScenario(
  'blkback sequences that wedge dom0 (backend without "dev" + real blkfront); runs last',
  (s) => s.wedges === true,
  99,
);
