"""Strawberry types per domain; `schema.app_schema` assembles the Schema object."""
