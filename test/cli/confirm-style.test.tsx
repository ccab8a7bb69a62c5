// One confirm style across knocker (src/shared/confirm.ts): the installer's plan, the dashboard's
// admin actions and `knocker uninstall` ask with the same words and the same keys — y yes, n/Esc
// no, any other key (Enter too) no answer. The prompts are read from where an operator sees them
// (an Ink screen, and bin/knocker in a real terminal) and printed side by side.
import fs from 'node:fs/promises';
import path from 'node:path';
import { render } from 'ink-testing-library';
import { afterEach, expect, test } from 'vitest';
import { PlanScreen } from '../../src/screens/plan-screen.js';
import { CONFIRM_KEYS } from '../../src/shared/confirm.js';
import { PATHS } from '../../src/system/root.js';
import { installPrimary } from '../helpers/exposedb.js';
import { frame, KEYS, press } from '../helpers/ink.js';
import { cleanEnv, KNOCKER, REPO } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const newRoot = useRoots();
const terminals: Terminal[] = [];
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
});

async function terminal(args: string[]): Promise<Terminal> {
  const t = await openTerminal([process.execPath, KNOCKER, ...args], { width: 160, height: 45, env: cleanEnv({ TERM: 'xterm-256color' }) });
  terminals.push(t);
  return t;
}

/** The line of a screen that holds the question. */
function promptLine(screen: string): string {
  return screen.split('\n').find((line) => line.includes(`[${CONFIRM_KEYS}]`)) ?? `(no prompt on:\n${screen})`;
}

test('no other confirm style is left in the source', async () => {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (/\.tsx?$/.test(entry.name)) files.push(full);
    }
  };
  await walk(path.join(REPO, 'src'));
  const offending: string[] = [];
  for (const file of files) {
    const source = await fs.readFile(file, 'utf8');
    if (/\[y\/N\]|Enter\/y|y\/n\b|key\.return \|\| input === 'y'/.test(source)) offending.push(path.relative(REPO, file));
  }
  expect(offending).toEqual([]);
});

test("the installer's plan, the dashboard and uninstall ask the same way, and Enter is no answer", async () => {
  const prompts: Record<string, string> = {};

  // The installer's plan screen.
  let applied = 0;
  let back = 0;
  const steps = [{ kind: 'file', title: 'Write knocknoc.conf', details: [], changes: true }];
  const plan = render(<PlanScreen checks={[]} steps={steps} warnings={[]} onApply={() => applied++} onBack={() => back++} onQuit={() => {}} isActive />);
  prompts.installer = promptLine(frame(plan));
  await press(plan, KEYS.enter, { expectChange: false });
  await press(plan, 'x', { expectChange: false });
  expect([applied, back]).toEqual([0, 0]);
  await press(plan, 'n', { expectChange: false });
  expect(back).toBe(1);
  await press(plan, 'y', { expectChange: false });
  expect(applied).toBe(1);
  plan.unmount();

  // The dashboard (--admin) and uninstall, as bin/knocker draws them on a terminal.
  const root = await newRoot();
  await installPrimary(root, '127.0.0.246');
  const status = await terminal(['status', '--admin', '--root', root.dir]);
  await status.waitFor('1 of 1 server healthy');
  await status.keys('d');
  prompts.dashboard = promptLine(await status.waitFor(`[${CONFIRM_KEYS}]`));
  await status.keys('Enter');
  expect(promptLine(await status.screen())).toBe(prompts.dashboard);
  await status.keys('n');
  await status.waitFor(': cancelled');
  await status.keys('q');
  await status.waitFor('EXIT=0');

  const uninstall = await terminal(['uninstall', '--root', root.dir]);
  prompts.uninstall = promptLine(await uninstall.waitFor(`[${CONFIRM_KEYS}]`));
  await uninstall.keys('Enter');
  await uninstall.waitFor(`(${CONFIRM_KEYS})`);
  await uninstall.keys('n');
  const declined = await uninstall.waitFor('EXIT=0');
  expect(declined).toContain('Nothing was changed.');
  await fs.access(root.path(PATHS.conf));

  console.log(
    Object.entries(prompts)
      .map(([where, line]) => `${where.padEnd(10)} ${line.trim()}`)
      .join('\n'),
  );
  expect(prompts.installer).toMatch(new RegExp(`Apply these 1 change\\? \\[${CONFIRM_KEYS.replace(/[/·]/g, '.')}\\]`));
  expect(prompts.dashboard).toMatch(/Drain \S+\? .* \[y: yes · n\/Esc: no\]$/);
  expect(prompts.uninstall.trim()).toBe(`Apply this uninstall? [${CONFIRM_KEYS}]`);
}, 120_000);
