-- Scepter store, SQLite schema 11: a device moved from the profile to DDM.
-- Keep in step with ../postgres/011_ddm_handover.sql.

-- A device on the profile channel whose OS crossed the DDM threshold gets the policy's
-- declarations while it still holds the policy's profile (no gap in its identity): one row per
-- (enrollment, policy) until the device reports the declarations active, when the profile's
-- RemoveProfile is queued and the row goes (mdm/ddm.c).
CREATE TABLE ddm_handover (
    enrollment_id TEXT NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    policy_id     INTEGER NOT NULL,  -- no reference: a deleted policy's profile must go too
    policy_uid    TEXT NOT NULL,  -- its profile's PayloadIdentifier suffix
    created       INTEGER NOT NULL,
    PRIMARY KEY (enrollment_id, policy_id)
);
