-- Scepter store, PostgreSQL schema 11: a device moved from the profile to DDM.
-- Keep in step with ../sqlite/011_ddm_handover.sql.

-- A device on the profile channel whose OS crossed the DDM threshold gets the policy's
-- declarations while it still holds the policy's profile (no gap in its identity): one row per
-- (enrollment, policy) until the device reports the declarations active, when the profile's
-- RemoveProfile is queued and the row goes (mdm/ddm.c).
CREATE TABLE ddm_handover (
    enrollment_id text COLLATE "C" NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    policy_id     bigint NOT NULL,  -- no reference: a deleted policy's profile must go too
    policy_uid    text COLLATE "C" NOT NULL,  -- its profile's PayloadIdentifier suffix
    created       bigint NOT NULL,
    PRIMARY KEY (enrollment_id, policy_id)
);
