-- Orleans ADO.NET grain persistence (MySQL / MariaDB).
--
-- Target: Microsoft.Orleans.Persistence.AdoNet 10.4.x, invariant
-- "MySql.Data.MySqlConnector". Requires V001 (table OrleansQuery).
-- Idempotent: CREATE TABLE IF NOT EXISTS plus upserts of the query texts, so
-- running it again refreshes the queries and leaves stored grain state alone.
-- Plain statements only (no DELIMITER, no stored routines).
--
-- Contract with the provider (AdoNetGrainStorage):
--   * At start it reads QueryKey/QueryText rows for ReadFromStorageKey,
--     WriteToStorageKey, ClearStorageKey and, optionally, DeleteStorageKey
--     (the last one is required only when the option DeleteStateOnClear is set).
--   * Every query gets these named parameters:
--       GrainIdHash INT, GrainIdN0 BIGINT, GrainIdN1 BIGINT, GrainTypeHash INT,
--       GrainTypeString, GrainIdExtensionString (NULL unless the grain has a
--       string key or a key extension), ServiceId.
--     Write, clear and delete also get GrainStateVersion (the ETag as INT, NULL
--     when the grain holds no version); write also gets PayloadBinary (bytes).
--   * Read must return zero or one row with the columns PayloadBinary and
--     Version, looked up by name. A NULL payload means no state (the record
--     counts as not existing) but the version still becomes the ETag.
--   * Write returns one row with column NewGrainStateVersion. On success it is
--     the new version (1 for a first insert, otherwise the old version plus 1).
--     On a version mismatch it must equal the version passed in, or be NULL;
--     the provider then throws InconsistentStateException.
--   * Clear and delete return one row whose first column follows the same rule.
--     Clear keeps the row, drops the payload and bumps the version. Delete
--     removes the row; the provider then forgets the ETag, so the next write
--     takes the insert path again.
--   * Statements that return no result set (UPDATE, INSERT, DELETE) may come
--     before the final SELECT: the provider collects the rows of every result
--     set and expects exactly one in total.
--
-- How versioned writes work here, without stored procedures or user variables:
--   1. When the grain holds no version, insert a placeholder row with
--      Version 0 and no payload. The unique key on IdentityKey turns this into
--      a no-op when the grain already has a row, and makes a concurrent second
--      inserter wait for the first one instead of creating a duplicate row.
--   2. Update the row whose Version equals the version held by the grain, or 0
--      on the insert path, setting the payload and Version + 1.
--   3. ROW_COUNT() of that UPDATE tells success, and the SELECT reports the new
--      or the unchanged version.
--   A placeholder left behind by a failed statement 2 is harmless: it reads as
--   "no state, ETag 0", and the next write of either path takes it over.

CREATE TABLE IF NOT EXISTS OrleansStorage
(
    Id                     BIGINT        NOT NULL AUTO_INCREMENT,

    -- Narrow lookup values computed by the provider from the grain id and the
    -- grain type name.
    GrainIdHash            INT           NOT NULL,
    GrainTypeHash          INT           NOT NULL,

    -- Full identity, used to tell hash collisions apart. GrainTypeString is
    -- what the provider is given as grain type: for IPersistentState that is
    -- the state name, not the grain class, so two grain classes that use the
    -- same state name and the same key share one row. For integer keys
    -- GrainIdN0 is 0 and GrainIdN1 is the key; for GUID keys they hold the two
    -- halves; for string keys both are 0 and the key is in GrainIdExtensionString,
    -- which otherwise holds the key extension or NULL.
    -- Binary collation: grain keys and type names are case sensitive.
    GrainIdN0              BIGINT        NOT NULL,
    GrainIdN1              BIGINT        NOT NULL,
    GrainTypeString        VARCHAR(1024) NOT NULL,
    GrainIdExtensionString VARCHAR(1024) NULL,
    ServiceId              VARCHAR(150)  NOT NULL,

    -- Serialized state as produced by the configured IGrainStorageSerializer
    -- (always bytes in Orleans 7 and later). LONGBLOB: a plain BLOB stops at 64 KiB.
    -- The whole command, payload included, must fit in max_allowed_packet.
    PayloadBinary          LONGBLOB      NULL,

    -- Informational only.
    ModifiedOn             DATETIME(3)   NOT NULL,

    -- Version of the stored state; the provider uses it as the ETag.
    Version                INT           NULL,

    -- One row per grain state: SHA-256 over the full identity, every text part
    -- preceded by its length so that no two identities can encode the same.
    IdentityKey            BINARY(32) AS (UNHEX(SHA2(CONCAT_WS('|',
                               GrainIdHash, GrainTypeHash, GrainIdN0, GrainIdN1,
                               CHAR_LENGTH(ServiceId), ServiceId,
                               CHAR_LENGTH(GrainTypeString), GrainTypeString,
                               IFNULL(CHAR_LENGTH(GrainIdExtensionString), -1),
                               IFNULL(GrainIdExtensionString, '')), 256))) STORED,

    CONSTRAINT PK_OrleansStorage PRIMARY KEY (Id),
    CONSTRAINT UX_OrleansStorage_Identity UNIQUE KEY (IdentityKey),
    INDEX IX_OrleansStorage (GrainIdHash, GrainTypeHash)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('ReadFromStorageKey',
'SELECT PayloadBinary, Version
FROM OrleansStorage
WHERE GrainIdHash = @GrainIdHash
    AND GrainTypeHash = @GrainTypeHash
    AND GrainIdN0 = @GrainIdN0
    AND GrainIdN1 = @GrainIdN1
    AND GrainTypeString = @GrainTypeString
    AND GrainIdExtensionString <=> @GrainIdExtensionString
    AND ServiceId = @ServiceId
LIMIT 1;')
ON DUPLICATE KEY UPDATE QueryText = VALUES(QueryText);

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('WriteToStorageKey',
'INSERT INTO OrleansStorage
    (GrainIdHash, GrainIdN0, GrainIdN1, GrainTypeHash, GrainTypeString,
     GrainIdExtensionString, ServiceId, PayloadBinary, ModifiedOn, Version)
SELECT @GrainIdHash, @GrainIdN0, @GrainIdN1, @GrainTypeHash, @GrainTypeString,
     @GrainIdExtensionString, @ServiceId, NULL, UTC_TIMESTAMP(3), 0
FROM DUAL
WHERE @GrainStateVersion IS NULL
ON DUPLICATE KEY UPDATE Version = Version;

UPDATE OrleansStorage
SET PayloadBinary = @PayloadBinary,
    ModifiedOn = UTC_TIMESTAMP(3),
    Version = Version + 1
WHERE GrainIdHash = @GrainIdHash
    AND GrainTypeHash = @GrainTypeHash
    AND GrainIdN0 = @GrainIdN0
    AND GrainIdN1 = @GrainIdN1
    AND GrainTypeString = @GrainTypeString
    AND GrainIdExtensionString <=> @GrainIdExtensionString
    AND ServiceId = @ServiceId
    AND Version = IFNULL(@GrainStateVersion, 0);

SELECT CASE WHEN ROW_COUNT() > 0 THEN IFNULL(@GrainStateVersion, 0) + 1
            ELSE @GrainStateVersion END AS NewGrainStateVersion;')
ON DUPLICATE KEY UPDATE QueryText = VALUES(QueryText);

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('ClearStorageKey',
'UPDATE OrleansStorage
SET PayloadBinary = NULL,
    ModifiedOn = UTC_TIMESTAMP(3),
    Version = Version + 1
WHERE GrainIdHash = @GrainIdHash
    AND GrainTypeHash = @GrainTypeHash
    AND GrainIdN0 = @GrainIdN0
    AND GrainIdN1 = @GrainIdN1
    AND GrainTypeString = @GrainTypeString
    AND GrainIdExtensionString <=> @GrainIdExtensionString
    AND ServiceId = @ServiceId
    AND Version = @GrainStateVersion;

SELECT CASE WHEN ROW_COUNT() > 0 THEN @GrainStateVersion + 1
            ELSE @GrainStateVersion END AS NewGrainStateVersion;')
ON DUPLICATE KEY UPDATE QueryText = VALUES(QueryText);

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('DeleteStorageKey',
'DELETE FROM OrleansStorage
WHERE GrainIdHash = @GrainIdHash
    AND GrainTypeHash = @GrainTypeHash
    AND GrainIdN0 = @GrainIdN0
    AND GrainIdN1 = @GrainIdN1
    AND GrainTypeString = @GrainTypeString
    AND GrainIdExtensionString <=> @GrainIdExtensionString
    AND ServiceId = @ServiceId
    AND Version = @GrainStateVersion;

SELECT CASE WHEN ROW_COUNT() > 0 THEN @GrainStateVersion + 1
            ELSE @GrainStateVersion END AS NewGrainStateVersion;')
ON DUPLICATE KEY UPDATE QueryText = VALUES(QueryText);
