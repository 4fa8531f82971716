-- Orleans ADO.NET base schema (MySQL / MariaDB), persistence only.
--
-- Target: Microsoft.Orleans.Persistence.AdoNet 10.4.x with the invariant
-- "MySql.Data.MySqlConnector" (MySqlConnector driver). Tested on MariaDB 10.11.
--
-- The ADO.NET providers do not embed SQL. At silo start each provider loads the
-- statements it runs from the table below, by key, so the table is the whole
-- contract between the provider and the database. Clustering and reminders are
-- not used by this project, so none of their tables or keys are created here.
--
-- Idempotent: safe to run on every application start. No DELIMITER, no stored
-- routines: plain statements, each ending with a semicolon at the end of a line,
-- so the file can be sent as one multi-statement command.

CREATE TABLE IF NOT EXISTS OrleansQuery
(
    -- Lookup key used by the provider, for example WriteToStorageKey.
    QueryKey  VARCHAR(64) NOT NULL,
    -- SQL text run by the provider with its named parameters bound.
    -- Must be a text column: the provider reads it back as a string.
    QueryText TEXT NOT NULL,

    CONSTRAINT PK_OrleansQuery PRIMARY KEY (QueryKey)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
