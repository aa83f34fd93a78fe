"""Build and deploy tooling (`make lambda`, `make deploy|update|reset`): run
as `python -m deploy.<module>`. Never shipped to Lambda."""
