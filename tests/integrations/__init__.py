"""Tests of the ERP, CRM and WeChat clients against their simulators."""
