"""Query and mutation entry points per domain: read arguments, check permission, call services."""
