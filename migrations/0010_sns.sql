-- Amazon SNS as a provider: each device routed through SNS has a platform
-- endpoint, created when the device registers (or at its first send when
-- it was inserted by SQL) and deleted when the device is removed.

-- The device's SNS platform endpoint. An operator moving from another push
-- processor may import existing endpoint ARNs here by SQL; they are
-- checked (token, enabled) before the first publish, as after any
-- registration (`sns_endpoint_stale`), because a re-registered or replaced
-- token may no longer match what SNS holds.
ALTER TABLE pushrelay.devices
    ADD COLUMN sns_endpoint_arn text
        CONSTRAINT devices_sns_endpoint_arn_is_short CHECK (length(sns_endpoint_arn) <= 1024),
    ADD COLUMN sns_endpoint_stale boolean NOT NULL DEFAULT true;

-- The reaper's work: endpoints of invalidated devices (removed, or their
-- token dead) that SNS still holds.
CREATE INDEX devices_sns_endpoints_to_delete ON pushrelay.devices (id)
    WHERE sns_endpoint_arn IS NOT NULL AND invalidated_at IS NOT NULL;

-- Endpoints of devices deleted outright (a user's erasure): the row that
-- named them is gone, so they wait here for the reaper.
CREATE TABLE pushrelay.sns_endpoint_deletions (
    endpoint_arn text        PRIMARY KEY,
    app          text        NOT NULL,
    platform     text        NOT NULL,
    queued_at    timestamptz NOT NULL DEFAULT now()
);
