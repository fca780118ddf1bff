// `npm run bench`: every benchmark prints its rows into one table. Targets are checked here by
// measurement, never by timed tests.
import { printTable, type BenchRow } from './table.ts';

const suites: Array<{ name: string; load: () => Promise<{ run: () => Promise<BenchRow[]> }> }> = [
  // Each part registers its suite here.
  { name: 'emulator', load: () => import('./emulator.ts') },
  { name: 'agent', load: () => import('./agent.ts') },
  { name: 'simulate', load: () => import('./simulate.ts') },
  { name: 'devices', load: () => import('./devices.ts') },
];

const rows: BenchRow[] = [];
for (const suite of suites) {
  process.stderr.write(`bench: ${suite.name}...\n`);
  rows.push(...(await (await suite.load()).run()));
}
printTable(rows);
