-- Order lifecycle: payment deadline per sale, and the exactly-once stock return of cancelled or expired orders.
-- Idempotent: ADD COLUMN IF NOT EXISTS (MariaDB 10.0.2 and later).

-- Seconds a buyer has to pay; orders past it expire and give their units back.
ALTER TABLE inventory ADD COLUMN IF NOT EXISTS payment_timeout_seconds INT NOT NULL DEFAULT 900;

-- Where the units of a cancelled or expired order go back in Redis, fixed in the same transaction that changes the
-- status, so a retried return always targets the same bucket (the return script is idempotent per bucket).
ALTER TABLE orders ADD COLUMN IF NOT EXISTS return_bucket INT NULL;

-- 1 once Redis has the units back; returns still at 0 are retried by the expiry service.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS stock_returned TINYINT NOT NULL DEFAULT 0;

CREATE INDEX IF NOT EXISTS ix_orders_status_committed ON orders (status, committed_at_ms);
