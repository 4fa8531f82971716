-- Orders and inventory in MySQL (MariaDB 10.11, MySQL 8, AliSQL).
--
-- Redis decides who gets a unit; this schema is the durable record of those
-- decisions. The order pipeline writes each group of deductions of one SKU in
-- one transaction (Grains/Persistence/InventorySql.cs):
--   1. INSERT IGNORE the orders, all stamped with the group id (commit_batch),
--   2. sum the quantity of the rows that carry that id, which are exactly the
--      rows this transaction inserted, so a redelivered order counts once,
--   3. log one deduct row per inserted order,
--   4. take that sum from inventory.available_stock, guarded so that it never
--      goes below zero.
--
-- Idempotent: CREATE TABLE IF NOT EXISTS only, safe on every silo start.
-- Plain statements (no DELIMITER, no stored routines) so the file can be sent
-- as one multi-statement command. Identifiers are case sensitive ids, hence the
-- binary collation on every table.
--
-- No foreign keys on purpose: a child insert takes a shared lock on the parent
-- inventory row that the same transaction then upgrades for its UPDATE, which
-- turns concurrent groups of one SKU into deadlocks.

CREATE TABLE IF NOT EXISTS inventory
(
    sku             VARCHAR(64)  NOT NULL,
    -- Units put on sale. available_stock only moves between 0 and this.
    total_stock     BIGINT       NOT NULL,
    -- Units not yet taken by a stored order. The deduct UPDATE is guarded by
    -- available_stock >= units; the CHECK is the last line of defence.
    available_stock BIGINT       NOT NULL,
    created_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),

    CONSTRAINT pk_inventory PRIMARY KEY (sku),
    CONSTRAINT ck_inventory_stock CHECK (total_stock >= 0 AND available_stock >= 0 AND available_stock <= total_stock)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS orders
(
    -- Minted by the quota grain and carried through Redis and the queue, so a
    -- redelivered message hits this key and is ignored.
    order_id        VARCHAR(64)  NOT NULL,
    request_id      VARCHAR(64)  NOT NULL,
    sku             VARCHAR(64)  NOT NULL,
    user_id         VARCHAR(64)  COLLATE utf8mb4_bin NOT NULL,
    quantity        INT          NOT NULL,
    -- The Redis bucket that gave the units, for returns and audits.
    bucket          INT          NOT NULL,
    status          VARCHAR(20)  NOT NULL,
    -- Id of the group transaction that inserted the row (32 hex digits).
    -- Step 2 above depends on it being unique per transaction attempt.
    commit_batch    CHAR(32)     NOT NULL,
    -- When Redis accepted the deduction, in Unix milliseconds (Redis clock).
    committed_at_ms BIGINT       NOT NULL,
    created_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),

    CONSTRAINT pk_orders PRIMARY KEY (order_id),
    CONSTRAINT ck_orders_quantity CHECK (quantity > 0),
    CONSTRAINT ck_orders_status CHECK (status IN ('pending_payment', 'paid', 'cancelled', 'expired')),
    INDEX ix_orders_sku_status (sku, status),
    INDEX ix_orders_sku_user (sku, user_id),
    -- Steps 2 and 3 read the rows of one group by this column.
    INDEX ix_orders_commit_batch (commit_batch)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS inventory_log
(
    id         BIGINT       NOT NULL AUTO_INCREMENT,
    sku        VARCHAR(64)  NOT NULL,
    order_id   VARCHAR(64)  NOT NULL,
    -- Signed change of available_stock: negative for deduct, positive for return.
    delta      BIGINT       NOT NULL,
    -- deduct, return and whatever later stages add.
    reason     VARCHAR(20)  NOT NULL,
    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),

    CONSTRAINT pk_inventory_log PRIMARY KEY (id),
    -- One row per order and reason, so a replayed stage cannot log twice.
    CONSTRAINT ux_inventory_log_order_reason UNIQUE KEY (order_id, reason),
    INDEX ix_inventory_log_sku (sku, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
