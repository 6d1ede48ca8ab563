"""What lives as long as the process: the cache and one HTTP client per upstream, built from settings."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx

from bff.cache import create_cache
from bff.context import Services
from bff.counters import create_counters
from bff.rate_limit import create_rate_limiter
from bff.services import flash_sale
from bff.settings import Settings
from integrations.crm import CrmClient
from integrations.erp import ErpClient
from integrations.wechat import WeChatClient
from integrations.wechatpay import WeChatPayClient


async def build_services(settings: Settings, stack: AsyncExitStack) -> Services:
    """Services for `settings`; everything opened is closed when `stack` unwinds."""
    cache = create_cache(settings.redis_url, settings.cache_prefix)
    stack.push_async_callback(cache.close)
    counters = create_counters(settings.redis_url, settings.cache_prefix)
    stack.push_async_callback(counters.close)
    # Flash-sale holds go through the shared counters (Redis across processes); restore on shutdown.
    stack.callback(flash_sale.configure, flash_sale.configure(counters))
    rate_limiter = create_rate_limiter(settings.redis_url, settings.cache_prefix)
    stack.push_async_callback(rate_limiter.close)
    timeout = settings.http_timeout_seconds

    def client() -> httpx.AsyncClient:
        # One pool per upstream, so a slow ERP cannot starve WeChat Pay of connections.
        http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(1.0, timeout)), trust_env=False)
        stack.push_async_callback(http.aclose)
        return http

    return Services(
        settings=settings,
        cache=cache,
        wechat=WeChatClient(
            client(),
            settings.wechat_api_base_url,
            settings.wechat_appid,
            settings.wechat_secret,
            token_cache=cache,
            timeout=timeout,
        ),
        wechat_pay=WeChatPayClient.from_files(
            client(),
            settings.wechat_pay_base_url,
            mchid=settings.wechat_pay_mchid,
            appid=settings.wechat_appid,
            merchant_serial=settings.wechat_pay_merchant_serial,
            private_key_path=settings.wechat_pay_private_key_path,
            wechatpay_public_key_path=settings.wechat_pay_public_key_path,
            public_key_id=settings.wechat_pay_public_key_id,
            apiv3_key=settings.wechat_pay_apiv3_key,
            timeout=timeout,
        ),
        erp=ErpClient(client(), settings.erp_base_url, settings.erp_api_token, timeout=timeout),
        crm=CrmClient(client(), settings.crm_base_url, settings.crm_api_token, timeout=timeout),
        rate_limiter=rate_limiter,
    )
