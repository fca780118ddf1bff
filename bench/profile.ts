// A summary of a V8 CPU profile (`node --cpu-prof`): where the time went, by function, as self
// time (the function's own code) and inclusive time (with what it called).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  self: Array<{ fn: string; ms: number }>;
  inclusive: Array<{ fn: string; ms: number }>;
}

const label = ({ callFrame: f }: ProfileNode) => {
  const where = f.url ? `${f.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
};

export function summarizeProfile(profile: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const sampled = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    sampled.set(id, (sampled.get(id) ?? 0) + dt);
    total += dt;
  });
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of sampled) {
    const key = label(byId.get(id)!);
    self.set(key, (self.get(key) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = label(byId.get(at)!);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const ranked = (m: Map<string, number>) =>
    [...m]
      .filter(([fn]) => !fn.startsWith('(root)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ fn, ms: us / 1000 }));
  return { totalMs: total / 1000, self: ranked(self), inclusive: ranked(inclusive) };
}

/**
 * The main thread's profile of those `node --cpu-prof --cpu-prof-dir <dir>` wrote (one per
 * thread, named CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is 0).
 */
export async function readProfileDir(dir: string): Promise<CpuProfile> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const file = files.find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) ?? files[0];
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  return JSON.parse(await readFile(path.join(dir, file), 'utf8')) as CpuProfile;
}

/** Summarizes the main thread's profile in a --cpu-prof-dir. */
export async function summarizeProfileDir(dir: string, top?: number): Promise<ProfileSummary> {
  return summarizeProfile(await readProfileDir(dir), top);
}

/** A share of a profile: samples whose stack holds a frame `match` accepts (the innermost rule that matches wins). */
export interface ProfileBucket {
  name: string;
  match: (frame: { functionName: string; url: string }) => boolean;
}

/**
 * Sampled time by bucket: each sample goes to the bucket of its innermost matching frame (a
 * SQLite call made while issuing a certificate counts as SQLite if SQLite has a rule), or to
 * `rest`. Pseudo-frames ("(idle)", "(garbage collector)", "(program)") are matched by name too.
 */
export function bucketProfile(profile: CpuProfile, buckets: ProfileBucket[], rest: string): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const bucketOf = new Map<number, string>();
  const classify = (id: number): string => {
    let name = bucketOf.get(id);
    if (name !== undefined) return name;
    const frame = byId.get(id)!.callFrame;
    name = buckets.find((b) => b.match(frame))?.name;
    if (name === undefined) {
      const up = parent.get(id);
      name = up === undefined ? rest : classify(up);
    }
    bucketOf.set(id, name);
    return name;
  };
  const ms = new Map<string, number>([...buckets.map((b) => [b.name, 0] as [string, number]), [rest, 0]]);
  profile.samples.forEach((id, i) => {
    const name = classify(id);
    ms.set(name, ms.get(name)! + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return ms;
}

export function formatProfile(title: string, s: ProfileSummary): string {
  const pct = (ms: number) => `${((100 * ms) / s.totalMs).toFixed(1).padStart(5)}%`;
  const lines = (rows: ProfileSummary['self']) => rows.map((r) => `  ${r.ms.toFixed(0).padStart(7)} ms ${pct(r.ms)}  ${r.fn}`).join('\n');
  return `${title}: ${s.totalMs.toFixed(0)} ms sampled\n self time:\n${lines(s.self)}\n inclusive time:\n${lines(s.inclusive)}\n`;
}
