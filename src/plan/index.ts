// The planner's public surface.
export { plan } from './plan.js';
export { fileKey, blockKey, parseDecDev, paramsPath, scriptIsOurs, vdevName } from './identity.js';
export { holdVerdict, keeperHolderName, KEEPER_SLOTS, FD_STORE_HOLDER, type HoldVerdict, type KeeperSlot } from './holding.js';
export { observedOnlyPlan } from './observed-only.js';
