-- The expiry sweep asks, sale by sale, for pending orders older than that sale's payment timeout. With the sale, the
-- status and the commit time in one index each question is a range of exactly the due orders; without it every
-- sweep (every 5 s, in every silo) read every pending order of every sale.
CREATE INDEX IF NOT EXISTS ix_orders_sku_status_committed ON orders (sku, status, committed_at_ms);

-- Its first two columns serve every query the (sku, status) index served; keeping both would cost every order
-- insert of the group commit one more index to maintain.
DROP INDEX IF EXISTS ix_orders_sku_status ON orders;
