"""`python -m integrations.simulators`: serve the ERP, CRM and WeChat simulators."""

from integrations.simulators.runner import main

main()
