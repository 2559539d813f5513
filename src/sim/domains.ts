// Simulated domains, created and destroyed as libxl does it (observed on Xen 4.17 with xl):
// /local/domain/<domid> (n0,r<domid>) with vm, name, cpu, memory, device, control, console, data, ...,
// /vm/<uuid> (with image/* and start_time), /libxl/<domid> (with device/console/0 and dm-version) and
// the console's backend under /local/domain/0/backend/console; @introduceDomain / @releaseDomain fired
// by "xenstored".
import { randomUUID } from 'node:crypto';
import type { XsPerm } from '../xenstore/api.js';
import { MAX_DOMID } from '../xen/vbd.js';
import type { Caller, Store, Transaction } from './store.js';

export interface SimDomain {
  domid: number;
  name: string;
  uuid: string;
}

const TOOLSTACK: Caller = { domid: 0, privileged: true };
/** What /vm/<uuid>/image/* name for a simulated PV guest (no image is booted: placeholders). */
const SIM_IMAGE = { kernel: '/var/lib/xvbd-sim/vmlinuz', ramdisk: '/var/lib/xvbd-sim/initrd.img', cmdline: 'console=hvc0' };

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
    if (!Number.isInteger(id) || id <= 0 || id > MAX_DOMID) throw new Error(`invalid domid ${domid}`);
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
    w(`/libxl/${id}/dm-version`, 'qemu_xen');
    // libxl__domain_build (PV): the image and the start time under /vm/<uuid> (inherit n0,r<domid>)
    w(`${vm}/image/ostype`, 'linux');
    w(`${vm}/image/kernel`, SIM_IMAGE.kernel);
    w(`${vm}/image/ramdisk`, SIM_IMAGE.ramdisk);
    w(`${vm}/image/cmdline`, SIM_IMAGE.cmdline);
    const now = Date.now();
    w(`${vm}/start_time`, `${Math.floor(now / 1000)}.${String(Math.floor((now % 1000) / 10)).padStart(2, '0')}`);
    this.addConsole(tx, id, String(0x3f600 + id));
    try {
      tx.commit();
    } catch (err) {
      this.byId.delete(id);
      throw err;
    }
    this.introduce(id);
    return dom;
  }

  /**
   * The primary console as libxl__device_console_add + libxl__device_generic_add write it (xl create of
   * a PV guest, recorded on 4.17): the frontend /local/domain/<domid>/console (n0,r<domid>; backend-id
   * n<domid>,r0), the backend /local/domain/0/backend/console/<domid>/0 (n0,r<domid>) and its copy under
   * /libxl/<domid>/device/console/0 (n0). No xenconsoled runs here: tty stays "" as libxl leaves it
   * (real xenconsoled then writes its /dev/pts/N).
   */
  private addConsole(tx: Transaction, id: number, ringRef: string): void {
    const s = this.store;
    const fe = `/local/domain/${id}/console`;
    const be = `/local/domain/0/backend/console/${id}/0`;
    const lib = `/libxl/${id}/device/console/0`;
    const roFront: XsPerm[] = [{ domid: 0, perm: 'n' }, { domid: id, perm: 'r' }];
    const front: XsPerm[] = [{ domid: id, perm: 'n' }, { domid: 0, perm: 'r' }];
    const w = (p: string, v: string, perms?: XsPerm[]) => {
      s.write(tx, TOOLSTACK, p, Buffer.from(v));
      if (perms) s.setPerms(tx, TOOLSTACK, p, perms);
    };
    w(`${lib}/frontend`, fe);
    w(`${lib}/backend`, be);
    if (tx.get(fe)) s.rm(tx, TOOLSTACK, fe);
    s.mkdir(tx, TOOLSTACK, fe);
    s.setPerms(tx, TOOLSTACK, fe, roFront);
    w(`${fe}/backend`, be);
    w(`${fe}/backend-id`, '0', front);
    const ro: [string, string][] = [
      ['limit', '1048576'],
      ['type', 'xenconsoled'],
      ['output', 'pty'],
      ['tty', ''],
      ['port', '2'],
      ['ring-ref', ringRef],
    ];
    for (const [k, v] of ro) w(`${fe}/${k}`, v, roFront);
    const bents: [string, string][] = [
      ['frontend-id', String(id)],
      ['online', '1'],
      ['state', '1'],
      ['protocol', 'vt100'],
    ];
    if (tx.get(be)) s.rm(tx, TOOLSTACK, be);
    s.mkdir(tx, TOOLSTACK, be);
    s.setPerms(tx, TOOLSTACK, be, roFront);
    w(`${be}/frontend`, fe);
    for (const [k, v] of bents) w(`${be}/${k}`, v);
    for (const [k, v] of bents) w(`${lib}/${k}`, v);
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
        if (tx.get(p)) s.rm(tx, TOOLSTACK, p);
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
