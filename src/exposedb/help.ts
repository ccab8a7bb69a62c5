// The help text of `knocker exposedb`, as Knocknoc documents it (the seed's "High availability"
// page). The page's copy is garbled where two revisions were merged; this is the consistent
// reading of its usage, options and examples. Printed for -h/--help and on misuse.
export const EXPOSEDB_HELP = `knocker exposedb "externalizes" your local database, allowing you to run multiple Knocknoc web-app servers utilizing this database.
Running --init re-configures your local Postgres database service to listen externally, creates a user login/password, and
adds (or removes) IP addresses to the trusted Postgres list - allowing external webapps to connect to the Knocknoc database.

Usage:
  sudo /opt/knocknoc/knocker/knocker exposedb [--init | --add <CIDR> | --remove <CIDR> | --list] [--conn URI]
  sudo /opt/knocknoc/knocker/knocker exposedb --sync [--conn URI]
  sudo /opt/knocknoc/knocker/knocker exposedb --renew-cert [--conn URI]
  sudo /opt/knocknoc/knocker/knocker exposedb --add-standby <ADDR[:PORT]> [--conn URI]
  sudo /opt/knocknoc/knocker/knocker exposedb --invite <ADDR/32> [--ttl DURATION] [--name NAME]
  sudo /opt/knocknoc/knocker/knocker exposedb --invites | --revoke <ID>
  sudo /opt/knocknoc/knocker/knocker exposedb --add-monitor <ADDR[:PORT]> [--conn URI]
  sudo /opt/knocknoc/knocker/knocker exposedb ... --dry-run [--json]    (all but --list: the plan; nothing changed)
  knocker exposedb ... --root DIR    (a sandbox root instead of this host: no sudo)

Options:
  --init            Initialize/expose the database for external access
  --add <CIDR>      Add access rule to pg_hba.conf for the specified CIDR (e.g., 192.168.1.0/24)
  --remove <CIDR>   Remove access rule from pg_hba.conf for the specified CIDR
  --list            List all IP addresses currently allowed to access the database
  --sync            On either host of a standby pair: this host's allow-list in pg_hba.conf as the primary's list says
                    (replicated; the primary applies every change on its standby itself, switchover and promote too)
  --renew-cert      Renew the database's TLS certificate from the cluster's CA (before it expires; no restart)
  --add-standby <ADDR[:PORT]>
                    Let a standby at ADDR replicate this database (knocker standby init there, with the bundle file printed);
                    this host's own web node then uses the multi-host string, as the other nodes do
  --invite <ADDR/32>
                    Invite one new web node: prints a join token (stdout, alone) for knocker install --join on
                    that host; single use, from that address only, over verified TLS
  --ttl <DURATION>  With --invite: how long the token lives (30m, 1h, 24h, at most 7d; default 1h)
  --name <NAME>     With --invite: the new node's server name
  --invites         List the invitations: id, address, name, state, expiry, used by / at (never a secret)
  --revoke <ID>     End an open invitation (its login, its pg_hba.conf line, and the address it added)
  --add-monitor <ADDR[:PORT]>
                    Make the bundle for the monitor host of automatic failover (pg_auto_failover; port default 5432):
                    its certificate from the cluster's CA and autoctl_node's password (knocker ha monitor --bundle FILE there)
  --conn <URI>      Optional: PostgreSQL connection string (default value is taken from your '/opt/knocknoc/etc/knocknoc.conf')
  --host <ADDR>     With --init: the host written into the printed connection string (default: this host's address)
  --dry-run         Show what would change (preflight and plan) and change nothing; not with --list
  --json            With --dry-run: the plan as JSON (the same top-level keys as every knocker --dry-run --json)
  --root <DIR>      Work on a sandbox root folder instead of this host (env KNOCKNOC_ROOT)
  -h, --help        Show this help text

Examples:
  # Initialize/expose database for external access
  sudo /opt/knocknoc/knocker/knocker exposedb --init

  # Add/remove access rules for a CIDR
  sudo /opt/knocknoc/knocker/knocker exposedb --add "203.0.113.7/32"
  sudo /opt/knocknoc/knocker/knocker exposedb --remove "203.0.113.7/32"

  # List all allowed IP addresses
  sudo /opt/knocknoc/knocker/knocker exposedb --list

  # Renew the certificate the other nodes verify (knocker status warns 30 days before it expires)
  sudo /opt/knocknoc/knocker/knocker exposedb --renew-cert

  # Prepare a replicated standby on 203.0.113.8 (then copy the printed file there: knocker standby init --bundle FILE)
  sudo /opt/knocknoc/knocker/knocker exposedb --add-standby 203.0.113.8

  # Join a web node in two commands: here, then on the new host (203.0.113.7)
  sudo /opt/knocknoc/knocker/knocker exposedb --invite 203.0.113.7/32 --name web-2 > token
  sudo /opt/knocknoc/knocker/knocker install --join - < token    (or --join TOKEN; or KNOCKER_JOIN_TOKEN)

  # See what --init would change, and change nothing
  sudo /opt/knocknoc/knocker/knocker exposedb --init --dry-run

  # If using a non-default connection string/config
  sudo /opt/knocknoc/knocker/knocker exposedb --init --conn "postgres://user:pass@host:5432/dbname"
  sudo /opt/knocknoc/knocker/knocker exposedb --add "1.2.3.4/32" --conn "postgres://user:pass@host:5432/dbname"

Output: stdout carries only the result a script would capture (the connection string of --init, the
bundle path of --add-standby/--add-monitor, the one result line of --add/--remove/--renew-cert/--sync, the CIDRs of --list,
the --dry-run plan); progress, notes, warnings and hints go to stderr.

Exit codes: 0 done, 1 internal error, 2 invalid usage (nothing changed), 3 a check failed: not root,
no local database, not exposed yet (nothing changed), 4 failed and undone, 5 failed and not fully undone.
`;
