export interface BenchRow {
  suite: string;
  metric: string;
  value: string;
  /** The target the value is measured against, when the issue sets one. */
  target?: string;
  /** Whether the target is met: shown as ok / MISSED. */
  ok?: boolean;
}

/** Prints rows as a Markdown table, readable in a terminal and pasteable into docs. */
export function printTable(rows: BenchRow[]): void {
  const header = ['suite', 'metric', 'value', 'target', 'result'];
  const cells = rows.map((r) => [r.suite, r.metric, r.value, r.target ?? '', r.ok === undefined ? '' : r.ok ? 'ok' : 'MISSED']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}

/** The q-quantile (0..1) of numbers, nearest-rank. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
