-- Knocknoc's first schema: installation settings and the registry of web nodes sharing this
-- database (each node registers itself and heartbeats; see src/server/).
CREATE TABLE knocknoc_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO knocknoc_settings (key, value) VALUES ('installed_at', now()::text);

CREATE TABLE servers (
    name            text PRIMARY KEY,
    listen          text NOT NULL,
    version         text NOT NULL,
    schema_version  integer NOT NULL,
    state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'stopped')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    stopped_at      timestamptz
);
