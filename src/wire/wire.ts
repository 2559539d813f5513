// The composition root: what a command is built from, made in one place from the host's configuration
// (src/host/config.ts, the environment read once): the loop registry, the executor's devices, the fd
// holders, who durably holds what, observe() as apply and the daemon run it, the xenstore connection.
// `xvbd apply` (session.ts), `xvbd reconcile`, the hook server and the demo take theirs from here.
import { hostConfig, type HostConfig } from '../host/config.js';
import { LoopRegistry, type RegistryOptions } from '../linux/index.js';
import { RegistryDevices } from '../apply/linux-devices.js';
import { KeeperHolder } from '../hold/holder.js';
import { durableHoldings } from '../hold/holdings.js';
import type { Holdings } from '../observe/holders.js';
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { XsClient } from '../xenstore/api.js';
import { connect } from '../xenstore/client.js';
import { observeWith } from './wiring.js';

export interface Wiring {
  readonly host: HostConfig;
  /** A loop registry (each process has its own; apply's is limited to the policy's allowedRoots). */
  registry(opts?: RegistryOptions): LoopRegistry;
  /** The executor's devices over `registry`. */
  devices(registry: LoopRegistry): RegistryDevices;
  /** Both keepers of the host's run dir as the fd holder (docs/fd-holding.md). */
  keeperHolder(opts?: { graceMs?: number; keepOwn?: boolean }): KeeperHolder;
  /** Who durably holds each loop device: both keepers and a running daemon's fd store. */
  holdings(): Promise<Holdings>;
  /** observe() over `registry`'s loop devices; with `holders`, who holds each is asked meanwhile. */
  observe(registry: LoopRegistry, opts?: { holders?: boolean }): (xs: XsClient, desired: DesiredState) => Promise<ObservedState>;
  /** A connection to xenstored at the host's paths. */
  xenstore(): Promise<XsClient>;
}

export function wire(host: HostConfig = hostConfig()): Wiring {
  const holdings = () => durableHoldings(host.runDir, { askDaemon: true });
  return {
    host,
    registry: (opts = {}) => new LoopRegistry(opts),
    devices: (registry) => new RegistryDevices(registry),
    keeperHolder: (opts = {}) => new KeeperHolder(host.runDir, opts),
    holdings,
    observe: (registry, opts = {}) => observeWith(registry, opts.holders ? holdings : undefined),
    xenstore: () => connect({ paths: host.xenstorePaths }),
  };
}
