-- Reserved: the number of a migration being written on another branch (console sessions).
-- It changes nothing; the lead replaces this file with that migration when the branches merge.
DO $$ BEGIN END $$;
