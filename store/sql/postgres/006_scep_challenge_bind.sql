-- Scepter store, PostgreSQL schema 5: what a one-time SCEP challenge may be used for.
-- Keep in step with ../sqlite/005_scep_challenge_bind.sql.

-- The subject and subjectAltNames the profile carrying the challenge asks for (one "KEY=value"
-- per line, as scep_expect_check reads it), or NULL when any request may use it (challenges
-- made by POST /v1/ca/NAME/challenges).
ALTER TABLE scep_challenges ADD COLUMN expect text;
