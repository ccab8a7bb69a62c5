-- The cluster's history (`knocker history`): one row per change a knocker command applied on a host
-- of the cluster (switchover, promote, rejoin, upgrade steps, drain/maint/ready, forget, install,
-- uninstall), written by the one runner on that host, read by every host. The id is made by the
-- recording host, so an event kept in its local spool while the database could not take it, and
-- written later (perhaps twice, by runs racing), stays one row.
CREATE TABLE history (
    id          uuid PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    -- Where: the host's name and, on a web node, its ServerName.
    host        text NOT NULL,
    server      text,
    -- The command as the operator typed it, and the plan it applied.
    command     text NOT NULL,
    action      text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'failed', 'rolled-back', 'incomplete')),
    -- The error of a run that did not succeed (scrubbed of secrets), else NULL.
    detail      text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX history_finished_at ON history (finished_at);
