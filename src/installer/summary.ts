// What an operator reads when the install is done: where things are and what to do next. Shared
// by the TUI's last screen and the unattended run.
import { formatListen, parseListen } from '../config/values.js';
import { redactUrl } from '../postgres/url.js';
import { statusUrl } from '../server/probe.js';
import { knockerCommand } from '../shared/hint.js';
import type { InstallSession, Prepared } from './index.js';

export function nextSteps(session: InstallSession, prepared: Prepared): string[] {
  const { answers } = prepared;
  const lines = [`Configuration: ${session.confFile}`];
  if (session.logFile) lines.push(`Log: ${session.logFile}`);
  if (prepared.plan.steps.some((s) => s.title.includes(session.answersFileOut))) {
    lines.push(`Answers saved for reuse: ${session.answersFileOut} (without the database password)`);
  }
  lines.push(`Database: ${redactUrl(prepared.plan.databaseUrl)}`);
  lines.push('Next:');
  if (answers.databaseOption === 1) {
    lines.push(
      `  - to add more web nodes on this database, run \`${knockerCommand(session.root, 'exposedb --init')}\` here, then \`${knockerCommand(session.root, 'exposedb --add <IP>/32')}\` for each node`,
    );
  } else if (answers.databaseOption === 3 && !answers.haproxy) {
    lines.push('  - put this node behind your load balancer, health-checked on /_status');
  }
  lines.push(`  - Knocknoc listens on ${answers.listen}; TrustedForwarders: ${answers.trustedForwarders.join(', ')}`);
  const listen = parseListen(answers.listen);
  if (listen.ok)
    lines.push(`  - health check: curl ${statusUrl(listen.value)}; the server: ${knockerCommand(session.root, 'service status')} (also stop, start, restart)`);
  const haproxy = prepared.report.haproxy?.settings;
  if (haproxy) {
    lines.push(
      `  - HAProxy on ${haproxy.tls ? 'https' : 'http'}://${formatListen(haproxy.bind)} spreads requests over ${haproxy.nodes.map((n) => n.name).join(', ')}; see them with ${knockerCommand(session.root, 'haproxy status')}`,
    );
  }
  return lines;
}
