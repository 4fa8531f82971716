-- Every order row costs the group commit one entry in each index of the orders table, and the group commit is the
-- hot path of the whole pipeline. Two indexes served no query:
--
-- ix_orders_commit_batch: the group transaction now sums what it inserted by primary key (the order ids it has just
-- sent, filtered by its batch id), so nothing reads orders by commit_batch through an index any more. The column
-- stays: it is how a group tells the rows it inserted from rows an earlier delivery stored.
DROP INDEX IF EXISTS ix_orders_commit_batch ON orders;

-- ix_orders_sku_user: no statement looks orders up by user; reads by SKU use ix_orders_sku_status_committed.
DROP INDEX IF EXISTS ix_orders_sku_user ON orders;

-- From this version on, inventory_log holds no 'deduct' row per order: the order row is the record of its deduction
-- (order id, SKU, quantity, Redis commit time). Returns keep their row, guarded by ux_inventory_log_order_reason.
-- Deduct rows written by earlier versions are left in place; only verify's count of log rows still includes them.
