// Observe: the host as ObservedState, and the shared snapshot (config + xenstore + observe + plan).
export { observe, observeSources, defaultXenBackendSysfs, type ObserveDeps } from './observe.js';
export { observeDesired, desiredScope } from './scope.js';
export { snapshot, observeFor, resolveConfigDir, type Snapshot, type SnapshotOptions, type ObserveForOptions } from './snapshot.js';
export { parseXenbusState, parseDomid, parseDevid, parseU64, parseInodeNode, parseDomainName } from './parse.js';
