import figlet from 'figlet';
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { REPO } from '../helpers/knocker.js';

test('assets/banner.txt is figlet "KNOCKNOC" in the Standard font', () => {
  const banner = fs.readFileSync(path.join(REPO, 'assets', 'banner.txt'), 'utf8');
  expect(banner).toBe(`${figlet.textSync('KNOCKNOC', { font: 'Standard' })}\n`);
  expect(banner.split('\n')[1]).toBe(' | |/ / \\ | |/ _ \\ / ___| |/ / \\ | |/ _ \\ / ___|');
});
