//! SLO maths (see issue 5): written separately from ingest and store.
