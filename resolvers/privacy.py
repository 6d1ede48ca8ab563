"""Privacy entry points: the member's data export, account deletion and consent to the policy."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.scalars import JSON

from bff.context import Info
from bff.services import privacy, privacy_export
from bff.services.errors import BusinessError
from bff.sessions import forget_session
from loaders.registry import forget
from schema.common import user_errors
from schema.privacy import AcceptPrivacyPolicyPayload, DeleteMyAccountPayload, PrivacyConsent


@strawberry.type
class PrivacyQuery:
    @strawberry.field(
        description="导出我的数据: everything the shop keeps about the viewer, as one JSON document."
    )
    async def export_my_data(self, info: Info) -> JSON | None:
        member_id = info.context.require_member()
        try:
            return JSON(await privacy_export.export_member_data(member_id, datetime.now(UTC)))
        except BusinessError:
            return None  # a token outliving its account: nothing is left to export

    @strawberry.field(description="The privacy policy version in force (the one acceptPrivacyPolicy takes).")
    def privacy_policy_version(self, info: Info) -> str:
        return info.context.settings.privacy_policy_version


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(description="同意隐私政策: record that the viewer accepted the version in force.")
    async def accept_privacy_policy(self, info: Info, version: str) -> AcceptPrivacyPolicyPayload:
        try:
            member_id = info.context.acting_member()
            consent = await privacy.accept_policy(
                member_id, version, info.context.settings.privacy_policy_version, datetime.now(UTC)
            )
        except BusinessError as exc:
            return AcceptPrivacyPolicyPayload(consent=None, user_errors=user_errors(exc))
        forget(info.context.loaders.member_by_id, member_id)
        return AcceptPrivacyPolicyPayload(consent=PrivacyConsent.from_consent(consent), user_errors=[])

    @strawberry.mutation(
        description='注销账号: `confirm` must be "DELETE". Refused while an order is in progress; orders '
        "stay for the accounts without the address; every token stops working."
    )
    async def delete_my_account(self, info: Info, confirm: str) -> DeleteMyAccountPayload:
        try:
            member_id = info.context.acting_member()
            await privacy.delete_account(member_id, confirm, datetime.now(UTC))
        except BusinessError as exc:
            return DeleteMyAccountPayload(deleted=False, user_errors=user_errors(exc))
        await forget_session(member_id, info.context.services.cache)
        forget(info.context.loaders.member_by_id, member_id)
        return DeleteMyAccountPayload(deleted=True, user_errors=[])
