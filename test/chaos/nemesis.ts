// The nemesis: a schedule of faults drawn from a seed, applied one at a time to a ChaosCluster.
// Each fault is applied, held for a while, healed, and followed by a recovery pause (so the
// cluster makes progress between faults and the clients see both sides).
import type { Rng } from './random.js';
import { ChaosCluster, sleep } from './cluster.js';
import { partitions, BLACKHOLE, RESET, type Link } from './proxy.js';
import { call } from './http-client.js';

export const faultKinds = [
  'kill',
  'kill-leader',
  'pause',
  'pause-leader',
  'partition-isolate-leader',
  'partition-majority-minority',
  'partition-asymmetric',
  'partition-bridge',
  'partition-ring',
  'partition-reset',
  'link-delay',
  'transfer-leadership',
  'membership',
  'slow-disk',
] as const;
export type FaultKind = (typeof faultKinds)[number];

export interface NemesisOptions {
  /** Faults to draw from (default: all that make sense for the cluster size). */
  kinds?: FaultKind[];
  holdMs: [number, number];
  recoverMs: [number, number];
  log?: (line: string) => void;
}

export const defaultNemesis: NemesisOptions = { holdMs: [2000, 8000], recoverMs: [1500, 4000] };

export class Nemesis {
  readonly counts = new Map<string, number>();
  readonly errors: string[] = [];
  current = 'none';
  private stopped = false;
  private transferUnsupported = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly rng: Rng,
    private readonly opts: NemesisOptions,
  ) {}

  kinds(): FaultKind[] {
    const n = this.cluster.ids.length;
    let ks = this.opts.kinds ?? [...faultKinds];
    if (n === 1)
      ks = ks.filter(
        (k) =>
          !k.startsWith('partition') &&
          k !== 'link-delay' &&
          k !== 'transfer-leadership' &&
          k !== 'membership',
      );
    if (n < 4) ks = ks.filter((k) => k !== 'partition-ring');
    if (this.transferUnsupported) ks = ks.filter((k) => k !== 'transfer-leadership');
    if (!this.cluster.slowDiskArmed) ks = ks.filter((k) => k !== 'slow-disk');
    return ks;
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const kind = this.rng.pick(this.kinds());
      const hold = this.rng.int(...this.opts.holdMs);
      try {
        const heal = await this.apply(kind);
        if (heal) {
          this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
          await this.sleepUnlessStopped(hold);
          await heal();
        }
      } catch (err) {
        this.errors.push(`${kind}: ${String((err as Error).message ?? err).slice(0, 500)}`);
        this.opts.log?.(`nemesis error during ${kind}: ${String(err).slice(0, 300)}`);
        try {
          await this.cluster.healAll();
        } catch (e2) {
          this.errors.push(`heal after ${kind}: ${String(e2).slice(0, 500)}`);
        }
      }
      this.current = 'none';
      await this.sleepUnlessStopped(this.rng.int(...this.opts.recoverMs));
    }
  }

  private async sleepUnlessStopped(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!this.stopped && Date.now() < end) await sleep(Math.min(200, end - Date.now()));
  }

  private async leaderOrRandom(): Promise<string> {
    return (await this.cluster.leader()) ?? this.rng.pick(this.cluster.ids);
  }

  private say(what: string): void {
    this.current = what;
    this.opts.log?.(`nemesis: ${what}`);
  }

  /** Apply a fault; returns its heal, or null when it could not be applied (not counted). */
  async apply(kind: FaultKind): Promise<(() => Promise<void>) | null> {
    const c = this.cluster;
    const ids = c.ids;
    const cut = (links: Link[], what: string, mode = BLACKHOLE) => {
      c.net.cut(links, mode);
      this.say(what);
      return async () => {
        c.net.heal();
      };
    };
    switch (kind) {
      case 'kill':
      case 'kill-leader': {
        const id = kind === 'kill' ? this.rng.pick(ids) : await this.leaderOrRandom();
        this.say(`SIGKILL ${id}`);
        await c.kill(id);
        return async () => {
          await c.restart(id);
          this.opts.log?.(`nemesis: restarted ${id}`);
        };
      }
      case 'pause':
      case 'pause-leader': {
        const id = kind === 'pause' ? this.rng.pick(ids) : await this.leaderOrRandom();
        this.say(`SIGSTOP ${id}`);
        c.pause(id);
        return async () => c.resume(id);
      }
      case 'partition-isolate-leader': {
        const id = await this.leaderOrRandom();
        return cut(partitions.isolate(id, ids), `isolate leader ${id}`);
      }
      case 'partition-majority-minority': {
        const shuffled = this.rng.shuffle(ids);
        const minority = shuffled.slice(0, Math.floor((ids.length - 1) / 2));
        return cut(
          partitions.majorityMinority(minority, ids),
          `partition minority [${minority}] | majority [${shuffled.slice(minority.length)}]`,
        );
      }
      case 'partition-asymmetric': {
        // The leader can send but not receive (or the reverse): heartbeats flow one way only.
        const id = await this.leaderOrRandom();
        const others = ids.filter((x) => x !== id);
        if (this.rng.chance(0.5))
          return cut(partitions.asymmetric(others, [id]), `asymmetric: ${id} hears nobody`);
        return cut(partitions.asymmetric([id], others), `asymmetric: nobody hears ${id}`);
      }
      case 'partition-bridge': {
        const s = this.rng.shuffle(ids);
        const bridge = s[0]!;
        const rest = s.slice(1);
        const half = Math.ceil(rest.length / 2);
        const a = rest.slice(0, half);
        const b = rest.slice(half);
        return cut(partitions.bridge(a, bridge, b), `bridge [${a}] <${bridge}> [${b}]`);
      }
      case 'partition-ring':
        return cut(partitions.ring(this.rng.shuffle(ids)), 'ring partition');
      case 'partition-reset': {
        const id = this.rng.pick(ids);
        return cut(partitions.isolate(id, ids), `connection resets around ${id}`, RESET);
      }
      case 'link-delay': {
        const ms = this.rng.int(50, 400);
        const links: Link[] = [];
        for (const a of ids) for (const b of ids) if (a !== b) links.push([a, b]);
        c.net.set(links, { kind: 'delay', ms, jitterMs: ms });
        this.say(`delay all links ${ms}-${2 * ms} ms`);
        return async () => c.net.heal();
      }
      case 'membership': {
        // Remove a follower from the membership, later join it back (as a learner, promoted once caught up).
        const leader = await c.leader();
        if (!leader) return null;
        const candidates = ids.filter((x) => x !== leader && c.isUp(x) && !c.isPaused(x));
        if (candidates.length === 0) return null;
        const victim = this.rng.pick(candidates);
        const r = await c.removeMember(victim);
        if (!r.ok) {
          this.opts.log?.(`nemesis: removing ${victim} failed (${r.detail}); skipped`);
          return null;
        }
        this.say(`removed ${victim} from the membership`);
        return async () => {
          await c.rejoinMember(victim);
          this.opts.log?.(`nemesis: ${victim} joined back`);
        };
      }
      case 'slow-disk': {
        // Half the time the leader: its slow fsync delays every commit and its heartbeats.
        const id = this.rng.chance(0.5) ? await this.leaderOrRandom() : this.rng.pick(ids);
        c.setSlowDisk(id, true);
        this.say(`slow disk on ${id}: every raft.db persist +${c.opts.slowDiskMs} ms`);
        return async () => c.setSlowDisk(id, false);
      }
      case 'transfer-leadership': {
        const leader = await c.leader();
        if (!leader) return null;
        const target = this.rng.pick(ids.filter((x) => x !== leader));
        const r = await call('POST', `${c.url(leader)}/cluster/transfer-leadership`, { to: target }, 5000);
        if (r.status === 404 || r.status === 405) {
          this.transferUnsupported = true;
          this.opts.log?.('nemesis: POST /cluster/transfer-leadership not available; leaving it out');
          return null;
        }
        this.say(`transfer leadership ${leader} -> ${target} (HTTP ${r.status ?? r.error})`);
        return async () => {};
      }
    }
  }
}
