// The allow-list block as text: what exposedb writes, what it reads back, and how it tells its own
// lines from hand edits. (Whether PostgreSQL accepts and applies them: exposedb.test.ts.)
import { describe, expect, test } from 'vitest';
import { allowListRules, readAllowList, sortCidrs, type AllowListTarget } from '../../src/postgres/allow-list.js';
import { readManagedBlock, withManagedBlock } from '../../src/postgres/hba.js';

const target: AllowListTarget = { database: 'knocknoc', role: 'knocknoc_remote', ssl: true };
const DEBIAN = ['# TYPE  DATABASE  USER  ADDRESS  METHOD', 'local   all   postgres   peer', 'host    all   all   127.0.0.1/32   scram-sha-256', ''].join('\n');

describe('the allow-list block', () => {
  test('written before the first rule, read back as the same CIDRs; the rest of the file untouched', () => {
    const text = withManagedBlock(DEBIAN, 'exposedb', allowListRules(target, ['10.1.2.0/24', '2001:db8::/32', '192.0.2.7/32']));
    const lines = text.split('\n');
    expect(lines[0]).toBe('# TYPE  DATABASE  USER  ADDRESS  METHOD');
    expect(lines[1]).toBe('# BEGIN exposedb managed block (do not edit by hand)');
    expect(text.endsWith(DEBIAN.split('\n').slice(1).join('\n'))).toBe(true);
    expect(text).toContain(
      'hostssl  knocknoc  knocknoc_remote  10.1.2.0/24  scram-sha-256\nhostssl  knocknoc  knocknoc_remote  192.0.2.7/32  scram-sha-256\nhostssl  knocknoc  knocknoc_remote  2001:db8::/32',
    );
    expect(readAllowList(text, target)).toEqual({
      present: true,
      cidrs: ['10.1.2.0/24', '192.0.2.7/32', '2001:db8::/32'],
      foreign: [],
      edited: false,
      type: 'hostssl',
      invites: [],
    });
    expect(readAllowList(DEBIAN, target)).toEqual({ present: false, cidrs: [], foreign: [], edited: false, type: undefined, invites: [] });
    // Open invitations (exposedb --invite): their lines and the joiners' reject lines read back, not foreign.
    const invites = [{ role: 'knocker_join_abcdefghij', cidr: '192.0.2.9/32' }];
    const withInvites = withManagedBlock(DEBIAN, 'exposedb', allowListRules(target, ['192.0.2.9/32'], undefined, invites));
    expect(withInvites).toContain('hostssl  knocknoc  knocker_join_abcdefghij  192.0.2.9/32  scram-sha-256\nhost     all  +knocker_joiners  0.0.0.0/0  reject');
    expect(readAllowList(withInvites, target)).toMatchObject({ cidrs: ['192.0.2.9/32'], foreign: [], edited: false, invites });
  });

  test('spacing or order changed by hand is "edited"; a rule exposedb does not write is "foreign"', () => {
    const text = withManagedBlock(DEBIAN, 'exposedb', allowListRules({ ...target, ssl: false }, ['10.1.2.0/24']));
    const respaced = text.replace('host     knocknoc  knocknoc_remote  10.1.2.0/24', 'host knocknoc knocknoc_remote 10.1.2.0/24');
    expect(readAllowList(respaced, target)).toMatchObject({ cidrs: ['10.1.2.0/24'], foreign: [], edited: true, type: 'host' });
    // Written without normalising: read as the network it matches, and marked as edited.
    const unnormalised = text.replace('10.1.2.0/24', '10.1.2.3/24');
    expect(readAllowList(unnormalised, target)).toMatchObject({ cidrs: ['10.1.2.0/24'], edited: true });
    const foreign = text.replace('# END exposedb', 'host all all 0.0.0.0/0 trust\nhostssl knocknoc knocknoc_remote 10.9.0.0/16 md5\n# END exposedb');
    expect(readAllowList(foreign, target)).toMatchObject({
      cidrs: ['10.1.2.0/24'],
      foreign: ['host all all 0.0.0.0/0 trust', 'hostssl knocknoc knocknoc_remote 10.9.0.0/16 md5'],
      edited: true,
    });
    expect(() => readAllowList(`${text}# END exposedb managed block\n`, target)).toThrow(/damaged/);
  });

  test("beside the installer's own managed block, each block stays whole, whichever came first", () => {
    const local = ['host    knocknoc  knocknoc  127.0.0.1/32  scram-sha-256'];
    const exposed = allowListRules(target, ['10.1.2.0/24']);
    const addLocal = (t: string) => withManagedBlock(t, 'knocker local', local);
    const addExposed = (t: string) => withManagedBlock(t, 'exposedb', exposed);
    for (const text of [addExposed(addLocal(DEBIAN)), addLocal(addExposed(DEBIAN))]) {
      expect(readManagedBlock(text, 'knocker local')?.rules).toEqual(local);
      expect(readAllowList(text, target)).toMatchObject({ cidrs: ['10.1.2.0/24'], foreign: [], edited: false });
      // Rewriting one leaves the other as it was.
      expect(readManagedBlock(withManagedBlock(text, 'knocker local', local), 'exposedb')).toEqual(readManagedBlock(text, 'exposedb'));
    }
  });

  test('names that are pg_hba keywords or unusual are quoted; order is IPv4, then IPv6, by address', () => {
    const odd: AllowListTarget = { database: 'all', role: 'web nodes', ssl: false };
    const rules = allowListRules(odd, ['10.0.0.0/8']);
    expect(rules).toContain('host     "all"  "web nodes"  10.0.0.0/8  scram-sha-256');
    expect(rules).toContain('host     all  "web nodes"  0.0.0.0/0  reject');
    expect(readAllowList(withManagedBlock('', 'exposedb', rules), odd)).toMatchObject({ cidrs: ['10.0.0.0/8'], foreign: [], edited: false });
    expect(sortCidrs(['2001:db8::/32', '10.0.0.0/8', '9.0.0.0/8', '10.0.0.0/16', '10.0.0.0/8'])).toEqual([
      '9.0.0.0/8',
      '10.0.0.0/8',
      '10.0.0.0/16',
      '2001:db8::/32',
    ]);
  });
});
