-- Identity keys (the gateway's signed assertions, later OpenID id_tokens) are a fourth key
-- purpose.
ALTER TABLE signing_keys DROP CONSTRAINT IF EXISTS signing_keys_purpose_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_purpose_check
    CHECK (purpose IN ('access', 'refresh', 'csrf', 'identity'));
