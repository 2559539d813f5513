// Observe: the host as ObservedState (the snapshot that also loads the config and plans is src/wire/snapshot.ts).
export { observe, observeSources, type ObserveDeps } from './observe.js';
export { defaultXenBackendSysfs } from '../host/env.js';
export { observeDesired, desiredScope } from './scope.js';
export { parseXenbusState, parseDomid, parseDevid, parseU64, parseInodeNode, parseDomainName } from './parse.js';
