-- From here on, agent metric chunks may hold values as bit streams
-- (codecs 5 and 6 of src/chunk/values.rs), which releases before this
-- migration cannot decode. No table changes: this migration exists so that
-- such a release refuses the database as too new (Error::SchemaTooNew)
-- instead of failing on a chunk it cannot read.
SELECT 1;
