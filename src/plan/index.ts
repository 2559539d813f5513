// The planner's public surface.
export { plan } from './plan.js';
export { fileKey, blockKey, parseHexDev, parseDecDev, paramsPath, scriptIsOurs, vdevName } from './identity.js';
