-- The organisation a session is looking at. A user of the whole installation
-- (org '*') switches between organisations; everyone else's sessions keep
-- NULL and see their own organisation.
ALTER TABLE sessions ADD COLUMN org TEXT;
