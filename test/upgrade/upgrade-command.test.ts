// The upgrade command template: split into words as a shell would, never run by one, and the
// placeholders filled in inside each word, so a value can never become another argument.
import { expect, test } from 'vitest';
import { commandFor, parseUpgradeCommand, secretsIn, showArgv, splitWords } from '../../src/upgrade/command.js';
import { UsageError } from '../../src/errors.js';

test('words: quotes group, backslashes escape, nothing is expanded', () => {
  expect(splitWords(`ssh  root@{host} 'apt-get install -y knocknoc' "a \\"b\\" c" d\\ e $HOME *`)).toEqual({
    ok: true,
    words: ['ssh', 'root@{host}', 'apt-get install -y knocknoc', 'a "b" c', 'd e', '$HOME', '*'],
  });
  expect(splitWords(`sh -c 'x'"y"z`)).toEqual({ ok: true, words: ['sh', '-c', 'xyz'] });
  expect(splitWords(`''`)).toEqual({ ok: true, words: [''] });
  expect(splitWords(`echo 'open`)).toEqual({ ok: false, error: "an unclosed ' at column 6" });
  expect(splitWords(`echo "open`)).toEqual({ ok: false, error: 'an unclosed " at column 6' });
  expect(splitWords('echo \\')).toEqual({ ok: false, error: 'a \\ at the end escapes nothing' });
});

test('placeholders are filled in inside words; a hostile value stays one argument', () => {
  const command = parseUpgradeCommand('ssh root@{host} -p 22 knocknoc-upgrade --name={name} --port {port}');
  expect(commandFor(command, { name: 'web-1', host: '10.0.0.11', port: 8756 })).toEqual([
    'ssh',
    'root@10.0.0.11',
    '-p',
    '22',
    'knocknoc-upgrade',
    '--name=web-1',
    '--port',
    '8756',
  ]);
  const argv = commandFor(command, { name: 'x; rm -rf / #', host: '$(reboot)', port: 1 });
  expect(argv[1]).toBe('root@$(reboot)');
  expect(argv[5]).toBe('--name=x; rm -rf / #');
  expect(argv).toHaveLength(8);
  expect(showArgv(argv)).toBe("ssh 'root@$(reboot)' -p 22 knocknoc-upgrade '--name=x; rm -rf / #' --port 1");
});

test('an empty command, an unknown placeholder or bad quoting is refused', () => {
  expect(() => parseUpgradeCommand('   ')).toThrow(UsageError);
  expect(() => parseUpgradeCommand('ssh {hostname} true')).toThrow(/unknown placeholder \{hostname\}/);
  expect(() => parseUpgradeCommand("ssh 'x")).toThrow(/unclosed '/);
});

test('secrets in the command are found and masked wherever it is shown', () => {
  const words = [
    'curl',
    '-H',
    'Authorization: Bearer s3cr3t-bearer',
    '--token',
    'tok-123456',
    'API_KEY=key-abcdef',
    '--password=pw-987654',
    'https://deploy:hunter22@repo.example/knocknoc.deb',
    '--name',
    'web-1',
  ];
  expect(secretsIn(words)).toEqual(['s3cr3t-bearer', 'tok-123456', 'key-abcdef', 'pw-987654', 'hunter22']);
  const shown = showArgv(words);
  for (const secret of secretsIn(words)) expect(shown).not.toContain(secret);
  expect(shown).toBe(
    "curl -H 'Authorization: Bearer ****' --token **** API_KEY=**** --password=**** https://deploy:****@repo.example/knocknoc.deb --name web-1",
  );
  expect(secretsIn(['ssh', 'root@{host}', 'apt-get', 'install', '-y', 'knocknoc'])).toEqual([]);
});
