// Simulated domains, created and destroyed as libxl does it (observed on Xen 4.17 with xl):
// /local/domain/<domid> (n0,r<domid>) with vm, name, cpu, memory, device, control, data, ...,
// /vm/<uuid> and /libxl/<domid>; @introduceDomain / @releaseDomain fired by "xenstored".
import { randomUUID } from 'node:crypto';
import type { XsPerm } from '../xenstore/api.js';
import type { Caller, Store } from './store.js';

export interface SimDomain {
  domid: number;
  name: string;
  uuid: string;
}

const TOOLSTACK: Caller = { domid: 0, privileged: true };

export class Domains {
  readonly byId = new Map<number, SimDomain>();
  /** Domains xenstored knows (introduced), including ones introduced over the wire. */
  readonly introduced = new Set<number>([0]);

  constructor(private readonly store: Store) {
    store.domainExists = (d) => d === 0 || this.introduced.has(d) || this.byId.has(d);
  }

  /** The nodes a fresh xenstored + xen-init-dom0 leave (as seen with xenstore-ls -fp on 4.17). */
  initDom0(): void {
    const s = this.store;
    const tx = s.begin();
    const w = (p: string, v: string) => s.write(tx, TOOLSTACK, p, Buffer.from(v));
    s.mkdir(tx, TOOLSTACK, '/local/domain/0/control');
    w('/local/domain/0/control/feature-poweroff', '1');
    w('/local/domain/0/control/feature-reboot', '1');
    w('/local/domain/0/control/feature-suspend', '1');
    w('/local/domain/0/domid', '0');
    w('/local/domain/0/name', 'Domain-0');
    w('/local/pool/0/name', 'Pool-0');
    tx.commit();
  }

  nextFreeDomid(): number {
    let d = 1;
    while (this.byId.has(d) || this.introduced.has(d)) d++;
    return d;
  }

  add(name: string, domid?: number): SimDomain {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new Error(`invalid domain name "${name}"`);
    for (const d of this.byId.values()) if (d.name === name) throw new Error(`a domain named "${name}" already exists (domid ${d.domid})`);
    const id = domid ?? this.nextFreeDomid();
    if (!Number.isInteger(id) || id <= 0 || id >= 0x7ff0) throw new Error(`invalid domid ${domid}`);
    if (this.byId.has(id)) throw new Error(`domid ${id} is in use`);
    const dom: SimDomain = { domid: id, name, uuid: randomUUID() };
    const s = this.store;
    const tx = s.begin();
    const dp = `/local/domain/${id}`;
    const vm = `/vm/${dom.uuid}`;
    const ro: XsPerm[] = [{ domid: 0, perm: 'n' }, { domid: id, perm: 'r' }];
    const rw: XsPerm[] = [{ domid: id, perm: 'n' }];
    const n0: XsPerm[] = [{ domid: 0, perm: 'n' }];
    this.byId.set(id, dom); // owner domains must exist for set_perms
    const mk = (p: string, perms: XsPerm[], v = '') => {
      s.write(tx, TOOLSTACK, p, Buffer.from(v));
      s.setPerms(tx, TOOLSTACK, p, perms);
    };
    const w = (p: string, v: string) => s.write(tx, TOOLSTACK, p, Buffer.from(v));
    s.rm(tx, TOOLSTACK, dp);
    mk(dp, ro);
    mk(vm, ro);
    mk(`/libxl/${id}`, n0);
    mk(`/libxl/${id}/device`, n0);
    mk(`${dp}/vm`, ro, vm);
    w(`${dp}/name`, name);
    mk(`${dp}/cpu`, ro);
    mk(`${dp}/memory`, ro);
    mk(`${dp}/device`, ro);
    mk(`${dp}/device/suspend/event-channel`, rw);
    mk(`${dp}/control`, ro);
    for (const c of ['shutdown', 'feature-poweroff', 'feature-reboot', 'feature-suspend', 'sysrq']) mk(`${dp}/control/${c}`, rw);
    // what the running guest's kernel writes into them (recorded: "1", owner the guest)
    for (const c of ['feature-poweroff', 'feature-reboot', 'feature-suspend']) w(`${dp}/control/${c}`, '1');
    mk(`${dp}/control/platform-feature-multiprocessor-suspend`, ro, '1');
    mk(`${dp}/control/platform-feature-xs_reset_watches`, ro, '1');
    for (const c of ['data', 'drivers', 'feature', 'attr', 'error']) mk(`${dp}/${c}`, rw);
    w(`${vm}/name`, name);
    w(`${vm}/uuid`, dom.uuid);
    w(`${dp}/memory/static-max`, '131072');
    w(`${dp}/memory/target`, '131072');
    w(`${dp}/memory/videoram`, '0');
    w(`${dp}/domid`, String(id));
    w(`${dp}/store/port`, '1');
    w(`${dp}/store/ring-ref`, String(0x3f601 + id));
    w(`${dp}/cpu/0/availability`, 'online');
    w(`/libxl/${id}/type`, 'pv');
    try {
      tx.commit();
    } catch (err) {
      this.byId.delete(id);
      throw err;
    }
    this.introduce(id);
    return dom;
  }

  /** XS_INTRODUCE: the domain's store connection is up; fires @introduceDomain. */
  introduce(domid: number): void {
    this.introduced.add(domid);
    this.store.fire({ path: '@introduceDomain', exact: true, perms: undefined });
  }

  /** XS_RELEASE (xenstored side only): fires @releaseDomain. */
  release(domid: number): boolean {
    if (!this.introduced.has(domid) || domid === 0) return false;
    this.introduced.delete(domid);
    this.store.fire({ path: '@releaseDomain', exact: true, perms: undefined });
    return true;
  }

  /**
   * Destroys a domain as `xl destroy` does: removes the backends libxl knows of
   * (/libxl/<domid>/device/<kind>/<devid>/backend, with empty parents cleaned up),
   * /local/domain/<domid>, /vm/<uuid>, /libxl/<domid>; then xenstored fires @releaseDomain.
   */
  remove(domid: number): void {
    const dom = this.byId.get(domid);
    if (!dom) throw new Error(`no simulated domain with domid ${domid}`);
    const s = this.store;
    const tx = s.begin();
    const lib = `/libxl/${domid}/device`;
    const kinds = tx.get(lib) ? s.directory(tx, TOOLSTACK, lib) : [];
    for (const kind of kinds) {
      for (const devid of s.directory(tx, TOOLSTACK, `${lib}/${kind}`)) {
        const be = tx.get(`${lib}/${kind}/${devid}/backend`);
        if (!be) continue;
        let p: string | undefined = be.value.toString('utf8');
        if (!p.startsWith('/')) continue;
        s.rm(tx, TOOLSTACK, p);
        // libxl__xs_path_cleanup: remove parents that became empty
        for (;;) {
          p = p.slice(0, p.lastIndexOf('/'));
          if (!p || p === '/local/domain/0') break;
          const n = tx.get(p);
          if (!n || n.children.length > 0) break;
          s.rm(tx, TOOLSTACK, p);
        }
      }
    }
    s.rm(tx, TOOLSTACK, `/local/domain/${domid}`);
    s.rm(tx, TOOLSTACK, `/vm/${dom.uuid}`);
    s.rm(tx, TOOLSTACK, `/libxl/${domid}`);
    tx.commit();
    this.byId.delete(domid);
    this.release(domid);
  }
}
