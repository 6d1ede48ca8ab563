"""Typed settings read from environment variables; every one has a working embedded default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bff.auth import KeyRingError, SigningKeys
from bff.crypto import DEFAULT_PII_KEYS

DEFAULT_JWT_SECRET = "dev-only-jwt-secret-change-me-before-production"  # nosec B105
DEFAULT_ERP_WEBHOOK_SECRET = (
    "whsec_ZGV2LW9ubHktZXJwLXdlYmhvb2stc2VjcmV0"  # base64("dev-only-erp-webhook-secret")  # nosec B105
)
DEFAULT_WECHAT_SECRET = "dev-only-wechat-secret"  # nosec B105
DEFAULT_WECHAT_PAY_APIV3_KEY = "dev-only-apiv3-key-0123456789abc"  # 32 bytes, as WeChat Pay requires
# Development key pairs for WeChat Pay shipped with the simulator; production must configure its own.
DEV_KEYS_DIR = Path(__file__).resolve().parent.parent / "integrations" / "simulators" / "keys"


class SettingsError(RuntimeError):
    """A setting is missing or unsafe for the configured environment."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


PERSISTED_QUERY_MODES = ("off", "apq", "trusted")


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the process is configured with; built once from the environment."""

    env: str = "development"
    debug: bool = False
    database_url: str = "sqlite://./bff.sqlite3"
    redis_url: str | None = None
    cache_prefix: str = "bff:"
    jwt_secret: str = DEFAULT_JWT_SECRET
    # JWT_SECRETS (`kid:secret,…`, the first signs) replaces JWT_SECRET, which is then unused.
    jwt_secrets: SigningKeys | None = None
    pii_keys: str | None = None  # PII_KEYS as configured (bff/crypto.py reads it); None when unset
    token_ttl_seconds: int = 7 * 24 * 3600
    erp_base_url: str = "http://127.0.0.1:8101"
    erp_api_token: str = "dev-erp-token"
    erp_webhook_secret: str = DEFAULT_ERP_WEBHOOK_SECRET
    crm_base_url: str = "http://127.0.0.1:8102"
    crm_api_token: str = "dev-crm-token"
    wechat_api_base_url: str = "http://127.0.0.1:8103"
    wechat_pay_base_url: str = "http://127.0.0.1:8103"
    wechat_appid: str = "wx_dev_appid"
    wechat_secret: str = DEFAULT_WECHAT_SECRET
    wechat_pay_mchid: str = "1900000001"
    wechat_pay_merchant_serial: str = "DEVMERCHANTSERIAL0001"
    wechat_pay_private_key_path: str = str(DEV_KEYS_DIR / "merchant_private_key.pem")
    wechat_pay_public_key_path: str = str(DEV_KEYS_DIR / "wechatpay_public_key.pem")
    wechat_pay_public_key_id: str = "PUB_KEY_ID_DEV0001"
    wechat_pay_apiv3_key: str = DEFAULT_WECHAT_PAY_APIV3_KEY
    wechat_pay_notify_url: str = "http://127.0.0.1:8000/webhooks/wechatpay"
    order_pay_timeout_minutes: int = 30
    order_auto_confirm_days: int = 7
    points_per_yuan_redeem: int = 100  # 100 points = ¥1 off
    points_max_share_percent: int = 50  # points pay at most this share of the payable
    shipping_fee_fen: int = 1000
    free_shipping_threshold_fen: int = 9900
    erp_inventory_timeout_seconds: float = 0.8
    outbox_max_attempts: int = 8
    inprocess_worker: bool = False
    graphiql: bool = True
    max_query_depth: int = 12
    max_query_cost: int = 25_000  # fields weighted by page sizes (bff/query_cost.py)
    introspection: bool = True  # schema introspection and field suggestions (off in production)
    rate_limits: bool = True  # per-caller cost and sensitive-mutation limits (bff/request_guard.py)
    catalog_cache_ttl: int = 300
    http_timeout_seconds: float = 3.0
    churn_message_template_id: str = "tmpl_care_comeback"  # subscribe message of the care flow
    reco_refresh_minutes: int = 60  # how often the worker recomputes recommendations
    privacy_policy_version: str = "2026-11"  # the version members must accept (acceptPrivacyPolicy)
    naive: bool = False  # benchmark G0: no loader batching, no document caches, stdlib json
    response_cache: bool = False  # benchmark G2: whole responses cached (bff/response_cache.py)
    response_cache_ttl: int = 30
    persisted_queries: str = "apq"  # off | apq | trusted (bff/persisted_queries.py)
    cdn_max_age: int = 30  # Cache-Control max-age of anonymous hashed GET responses

    @property
    def signing_keys(self) -> SigningKeys:
        """The JWT key ring: JWT_SECRETS, else JWT_SECRET under the key id `default`."""
        return self.jwt_secrets if self.jwt_secrets is not None else SigningKeys.single(self.jwt_secret)

    @property
    def production(self) -> bool:
        """True when running with BFF_ENV=production."""
        return self.env == "production"

    def check(self) -> None:
        """Refuse unsafe configurations (default secrets in production)."""
        if not self.production:
            return
        unsafe = [
            name
            for name, value, default in (
                ("ERP_WEBHOOK_SECRET", self.erp_webhook_secret, DEFAULT_ERP_WEBHOOK_SECRET),
                ("WECHAT_SECRET", self.wechat_secret, DEFAULT_WECHAT_SECRET),
                ("WECHAT_PAY_APIV3_KEY", self.wechat_pay_apiv3_key, DEFAULT_WECHAT_PAY_APIV3_KEY),
            )
            if value == default
        ]
        if any(secret == DEFAULT_JWT_SECRET for _, secret in self.signing_keys.keys):
            unsafe.insert(0, "JWT_SECRETS" if self.jwt_secrets is not None else "JWT_SECRET")
        pii = [part.strip() for part in (self.pii_keys or DEFAULT_PII_KEYS).split(",")]
        if DEFAULT_PII_KEYS in pii:
            unsafe.append("PII_KEYS")
        if unsafe:
            raise SettingsError(f"production refuses default secrets: set {', '.join(unsafe)}")


def _signing_keys(spec: str) -> SigningKeys | None:
    if not spec.strip():
        return None
    try:
        return SigningKeys.parse(spec)
    except KeyRingError as exc:
        raise SettingsError(f"JWT_SECRETS: {exc}") from exc


def load_settings() -> Settings:
    """Read the settings from the environment."""
    env = _env("BFF_ENV", "development")
    production = env == "production"
    return Settings(
        env=env,
        debug=_env_bool("BFF_DEBUG", False),
        database_url=_env("DATABASE_URL", "sqlite://./bff.sqlite3"),
        redis_url=os.environ.get("REDIS_URL") or None,
        cache_prefix=_env("CACHE_PREFIX", "bff:"),
        jwt_secret=_env("JWT_SECRET", DEFAULT_JWT_SECRET),
        jwt_secrets=_signing_keys(os.environ.get("JWT_SECRETS", "")),
        pii_keys=os.environ.get("PII_KEYS") or None,
        token_ttl_seconds=_env_int("TOKEN_TTL_SECONDS", 7 * 24 * 3600),
        erp_base_url=_env("ERP_BASE_URL", "http://127.0.0.1:8101"),
        erp_api_token=_env("ERP_API_TOKEN", "dev-erp-token"),
        erp_webhook_secret=_env("ERP_WEBHOOK_SECRET", DEFAULT_ERP_WEBHOOK_SECRET),
        crm_base_url=_env("CRM_BASE_URL", "http://127.0.0.1:8102"),
        crm_api_token=_env("CRM_API_TOKEN", "dev-crm-token"),
        wechat_api_base_url=_env("WECHAT_API_BASE_URL", "http://127.0.0.1:8103"),
        wechat_pay_base_url=_env("WECHAT_PAY_BASE_URL", "http://127.0.0.1:8103"),
        wechat_appid=_env("WECHAT_APPID", "wx_dev_appid"),
        wechat_secret=_env("WECHAT_SECRET", DEFAULT_WECHAT_SECRET),
        wechat_pay_mchid=_env("WECHAT_PAY_MCHID", "1900000001"),
        wechat_pay_merchant_serial=_env("WECHAT_PAY_MERCHANT_SERIAL", "DEVMERCHANTSERIAL0001"),
        wechat_pay_private_key_path=_env(
            "WECHAT_PAY_PRIVATE_KEY_PATH", str(DEV_KEYS_DIR / "merchant_private_key.pem")
        ),
        wechat_pay_public_key_path=_env(
            "WECHAT_PAY_PUBLIC_KEY_PATH", str(DEV_KEYS_DIR / "wechatpay_public_key.pem")
        ),
        wechat_pay_public_key_id=_env("WECHAT_PAY_PUBLIC_KEY_ID", "PUB_KEY_ID_DEV0001"),
        wechat_pay_apiv3_key=_env("WECHAT_PAY_APIV3_KEY", DEFAULT_WECHAT_PAY_APIV3_KEY),
        wechat_pay_notify_url=_env("WECHAT_PAY_NOTIFY_URL", "http://127.0.0.1:8000/webhooks/wechatpay"),
        order_pay_timeout_minutes=_env_int("ORDER_PAY_TIMEOUT_MINUTES", 30),
        order_auto_confirm_days=_env_int("ORDER_AUTO_CONFIRM_DAYS", 7),
        points_per_yuan_redeem=_env_int("POINTS_PER_YUAN", 100),
        points_max_share_percent=_env_int("POINTS_MAX_SHARE_PERCENT", 50),
        shipping_fee_fen=_env_int("SHIPPING_FEE_FEN", 1000),
        free_shipping_threshold_fen=_env_int("FREE_SHIPPING_THRESHOLD_FEN", 9900),
        erp_inventory_timeout_seconds=float(_env("ERP_INVENTORY_TIMEOUT_SECONDS", "0.8")),
        outbox_max_attempts=_env_int("OUTBOX_MAX_ATTEMPTS", 8),
        inprocess_worker=_env_bool("BFF_INPROCESS_WORKER", False),
        graphiql=_env_bool("BFF_GRAPHIQL", not production),
        max_query_depth=_env_int("BFF_MAX_QUERY_DEPTH", 12),
        max_query_cost=_env_int("BFF_MAX_QUERY_COST", 25_000),
        rate_limits=_env_bool("BFF_RATE_LIMITS", True),
        introspection=_env_bool("BFF_INTROSPECTION", not production),
        catalog_cache_ttl=_env_int("CATALOG_CACHE_TTL", 300),
        http_timeout_seconds=float(_env("HTTP_TIMEOUT_SECONDS", "3.0")),
        churn_message_template_id=_env("CHURN_MESSAGE_TEMPLATE_ID", "tmpl_care_comeback"),
        reco_refresh_minutes=_env_int("RECO_REFRESH_MINUTES", 60),
        privacy_policy_version=_env("PRIVACY_POLICY_VERSION", "2026-11"),
        naive=_env_bool("BFF_NAIVE", False),
        response_cache=_env_bool("BFF_RESPONSE_CACHE", False),
        response_cache_ttl=_env_int("BFF_RESPONSE_CACHE_TTL", 30),
        persisted_queries=_env_choice("BFF_PERSISTED_QUERIES", "apq", PERSISTED_QUERY_MODES),
        cdn_max_age=_env_int("BFF_CDN_MAX_AGE", 30),
    )
