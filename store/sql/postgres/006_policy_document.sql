-- One policy model (profiles/ owns it): a policy is stored as its canonical document, the
-- JSON of profile_policy_document(), next to the columns the store queries (uid, type,
-- platform, name, version, created, updated).  Existing rows are converted field by field
-- (unset fields left out), then the per-field columns go.

ALTER TABLE policies ADD COLUMN document text NOT NULL DEFAULT '{}';

UPDATE policies SET document = jsonb_strip_nulls(jsonb_build_object(
    'type', type,
    'name', name,
    'platform', platform,
    'notes', notes,
    'scep', jsonb_build_object(
        'url', scep_url,
        'name', scep_name,
        'challenge', scep_challenge,
        'fingerprint', scep_fingerprint,
        'key_size', key_size,
        'subject', scep_subject,
        'retries', retries,
        'retry_delay', retry_delay,
        'key_extractable', key_extractable,
        'key_usage', CASE key_usage & 5
                         WHEN 1 THEN '["signing"]'::jsonb
                         WHEN 4 THEN '["encryption"]'::jsonb
                         WHEN 5 THEN '["signing","encryption"]'::jsonb
                         ELSE '[]'::jsonb END,
        'root_certificate', translate(encode(root_cert, 'base64'), E'\n', ''),
        'subject_alt_name', jsonb_build_object(
            'dns_name', san_dns,
            'nt_principal_name', san_ntpn,
            'rfc822_name', san_rfc822,
            'uri', san_uri))))::text;

ALTER TABLE policies
    DROP COLUMN notes,
    DROP COLUMN scep_url,
    DROP COLUMN scep_name,
    DROP COLUMN scep_challenge,
    DROP COLUMN scep_fingerprint,
    DROP COLUMN scep_subject,
    DROP COLUMN key_size,
    DROP COLUMN retries,
    DROP COLUMN retry_delay,
    DROP COLUMN key_extractable,
    DROP COLUMN key_usage,
    DROP COLUMN root_cert,
    DROP COLUMN san_dns,
    DROP COLUMN san_ntpn,
    DROP COLUMN san_rfc822,
    DROP COLUMN san_uri;
