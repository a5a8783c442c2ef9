-- The lease a worker holds on a delivery for one attempt: its token, so that only the holder
-- finishes the attempt (a worker whose lease ran out cannot overwrite what another did).
ALTER TABLE webhook_deliveries ADD COLUMN lease_token TEXT;
