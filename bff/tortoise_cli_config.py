"""Config for the `tortoise` command: `tortoise -c bff.tortoise_cli_config.TORTOISE_ORM makemigrations`."""

from bff.db import tortoise_config
from bff.settings import load_settings

TORTOISE_ORM = tortoise_config(load_settings().database_url)
