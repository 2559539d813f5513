// Public API of src/linux: loop devices done right.
export { LoopRegistry, RegistryError } from './registry.js';
export type { LoopHandle, AcquireSpec, RegistryOptions, RegistryRefusal, BackingFound } from './registry.js';
export { LoopUevents } from './uevent.js';
export type { LoopChanges } from './uevent.js';
export { listLoops, mountedDevices } from './list.js';
export type { ListOptions } from './list.js';
export { openSource, closeSource, isUnderRoots, SourceError } from './source.js';
export type { OpenSourceOptions, OpenedSource, SourceStat, SourceKind, SourceRefusal } from './source.js';
export {
  attachLoop,
  freeLoop,
  checkProof,
  isBound,
  isOurMarker,
  currentInstance,
  parseMarker,
  makeMarker,
  markerMatches,
  LoopFreeRefused,
  LoopVerifyError,
  MARKER_PREFIX,
} from './loopdev.js';
export type { FreeProof, FreeResult, FreeRefusal, AttachOptions, AttachedLoop, AttachStats } from './loopdev.js';
export { SysError, isSysError } from './ffi.js';
