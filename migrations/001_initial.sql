-- Knocknoc's first schema: installation settings and the registry of web nodes sharing this
-- database (each node registers itself and heartbeats; see src/server/registry.ts).
CREATE TABLE knocknoc_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO knocknoc_settings (key, value) VALUES ('installed_at', now()::text);

-- One row per web node (ServerName). A node is online while it is 'running' and its last_seen is
-- younger than a few of its heartbeats; a clean stop sets 'stopped'.
CREATE TABLE servers (
    name              text PRIMARY KEY,
    listen            text NOT NULL,
    version           text NOT NULL,
    -- The schema version this node's release expects; out of step when it differs from the database's.
    schema_version    integer NOT NULL,
    state             text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'stopped')),
    -- A random id of the running process, so two nodes given the same ServerName do not pass for one.
    instance          text NOT NULL,
    heartbeat_seconds integer NOT NULL CHECK (heartbeat_seconds > 0),
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_seen         timestamptz NOT NULL DEFAULT now(),
    stopped_at        timestamptz
);
