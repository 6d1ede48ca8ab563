"""Runnable fake ERP, CRM and WeChat servers speaking the wire formats of shared/contract/external."""

from integrations.simulators.crm import create_crm_app
from integrations.simulators.erp import create_erp_app
from integrations.simulators.wechat import create_wechat_app

__all__ = ["create_crm_app", "create_erp_app", "create_wechat_app"]
