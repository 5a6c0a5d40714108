-- The tokens of fg-token-repository: one per project, sealed with AES-256-GCM by common/crypto
-- ("v1:<key id>:<base64(nonce | ciphertext | tag)>") with "project:<id>" as authenticated context,
-- so no plaintext is ever stored and a value copied to another row does not open.
-- docs/api/token-repository.md describes the API that reads and writes it.

CREATE TABLE tokens (
    project_id bigint PRIMARY KEY CHECK (project_id > 0),
    sealed     text NOT NULL CHECK (sealed LIKE 'v1:%:%'),
    -- derived, so it can never disagree with the value; rotation finds stale rows by it
    key_id     text NOT NULL GENERATED ALWAYS AS (split_part(sealed, ':', 2)) STORED,
    expires_at timestamptz, -- NULL: the token does not expire
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now() -- last PUT (a rotation does not change it)
);
CREATE INDEX tokens_key_id_idx ON tokens (key_id);
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at) WHERE expires_at IS NOT NULL;

-- RFC 3339 in UTC, with a fraction only when there is one: how the API shows every time.
CREATE FUNCTION tokens_rfc3339(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_trunc('second', t) = t THEN ''
                ELSE rtrim(to_char(t AT TIME ZONE 'UTC', '.US'), '0') END
        || 'Z'
$$;
