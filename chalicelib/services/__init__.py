"""Services: the pipeline steps, the ingest trigger and the search API, dependencies passed in."""
