"""Outbound integrations (ERP, CRM, WeChat): typed httpx clients, their errors, and simulators."""
