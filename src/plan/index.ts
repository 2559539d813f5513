// The planner's public surface.
export { plan, stateName } from './plan.js';
export { devidToVdev, diskLetters } from './vdev.js';
export { fileKey, blockKey, parseHexDev, parseDecDev, paramsPath, scriptIsOurs } from './identity.js';
