-- Provider holds: an app/platform/environment whose sends a process paused
-- (circuit breaker, a configuration error the provider named, or the
-- misconfiguration guard), with the reason and what to check in plain
-- words. `pushrelay status` and `check-config` show the active ones, and
-- every process honours the pauses the others recorded.
CREATE TABLE pushrelay.provider_holds (
    app          text        NOT NULL,
    platform     text        NOT NULL,
    environment  text        NOT NULL,
    -- The process that opened the hold.
    worker       text        NOT NULL,
    -- breaker | config_error | guard
    kind         text        NOT NULL,
    reason       text        NOT NULL,
    hint         text        NOT NULL,
    paused_at    timestamptz NOT NULL DEFAULT now(),
    paused_until timestamptz NOT NULL,
    PRIMARY KEY (app, platform, environment, worker)
);
