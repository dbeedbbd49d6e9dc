-- One policy model (profiles/ owns it): a policy is stored as its canonical document, the
-- JSON of profile_policy_document(), next to the columns the store queries (uid, type,
-- platform, name, version, created, updated).  Existing rows are converted field by field,
-- then the per-field columns go.

ALTER TABLE policies ADD COLUMN document TEXT NOT NULL DEFAULT '{}';

-- SQLite has no base64: the root certificate's DER is encoded three bytes (six hex digits)
-- at a time, the string growing row by row so the order is certain.
CREATE TEMP TABLE policy_root_b64 AS
WITH RECURSIVE b64(id, h, acc) AS (
    SELECT id, hex(root_cert), '' FROM policies WHERE root_cert IS NOT NULL
    UNION ALL
    SELECT id, substr(h, 7), acc || (SELECT
            substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', ((n >> 18) & 63) + 1, 1) ||
            substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', ((n >> 12) & 63) + 1, 1) ||
            CASE WHEN l < 4 THEN '='
                 ELSE substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', ((n >> 6) & 63) + 1, 1) END ||
            CASE WHEN l < 6 THEN '='
                 ELSE substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', (n & 63) + 1, 1) END
        FROM (SELECT min(length(h), 6) AS l,
            ((instr('0123456789ABCDEF', substr(h || '000000', 1, 1)) - 1) << 20) |
            ((instr('0123456789ABCDEF', substr(h || '000000', 2, 1)) - 1) << 16) |
            ((instr('0123456789ABCDEF', substr(h || '000000', 3, 1)) - 1) << 12) |
            ((instr('0123456789ABCDEF', substr(h || '000000', 4, 1)) - 1) << 8) |
            ((instr('0123456789ABCDEF', substr(h || '000000', 5, 1)) - 1) << 4) |
            (instr('0123456789ABCDEF', substr(h || '000000', 6, 1)) - 1) AS n))
    FROM b64 WHERE h <> ''
)
SELECT id, acc AS b64 FROM b64 WHERE h = '';

UPDATE policies SET document = json_object(
    'type', type,
    'name', name,
    'platform', platform,
    'notes', notes,
    'scep', json_object(
        'url', scep_url,
        'name', scep_name,
        'challenge', scep_challenge,
        'fingerprint', scep_fingerprint,
        'key_size', key_size,
        'subject', scep_subject,
        'retries', retries,
        'retry_delay', retry_delay,
        'key_extractable', json(CASE WHEN key_extractable THEN 'true' ELSE 'false' END),
        'key_usage', json(CASE key_usage & 5
                              WHEN 1 THEN '["signing"]'
                              WHEN 4 THEN '["encryption"]'
                              WHEN 5 THEN '["signing","encryption"]'
                              ELSE '[]' END),
        'root_certificate', (SELECT b.b64 FROM policy_root_b64 b WHERE b.id = policies.id),
        'subject_alt_name', json_object(
            'dns_name', san_dns,
            'nt_principal_name', san_ntpn,
            'rfc822_name', san_rfc822,
            'uri', san_uri)));

DROP TABLE policy_root_b64;

ALTER TABLE policies DROP COLUMN notes;
ALTER TABLE policies DROP COLUMN scep_url;
ALTER TABLE policies DROP COLUMN scep_name;
ALTER TABLE policies DROP COLUMN scep_challenge;
ALTER TABLE policies DROP COLUMN scep_fingerprint;
ALTER TABLE policies DROP COLUMN scep_subject;
ALTER TABLE policies DROP COLUMN key_size;
ALTER TABLE policies DROP COLUMN retries;
ALTER TABLE policies DROP COLUMN retry_delay;
ALTER TABLE policies DROP COLUMN key_extractable;
ALTER TABLE policies DROP COLUMN key_usage;
ALTER TABLE policies DROP COLUMN root_cert;
ALTER TABLE policies DROP COLUMN san_dns;
ALTER TABLE policies DROP COLUMN san_ntpn;
ALTER TABLE policies DROP COLUMN san_rfc822;
ALTER TABLE policies DROP COLUMN san_uri;
