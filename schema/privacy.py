"""Privacy types: the member's consent to the privacy policy and the payloads of their data rights."""

from __future__ import annotations

from datetime import datetime

import strawberry

from bff.services.privacy import Consent
from schema.common import UserError


@strawberry.type(description="The privacy policy version the member accepted, against the one in force.")
class PrivacyConsent:
    accepted_version: str | None = strawberry.field(description="Null when never accepted.")
    accepted_at: datetime | None
    current_version: str
    is_current: bool = strawberry.field(description="False: show the policy and ask again.")

    @classmethod
    def from_consent(cls, consent: Consent) -> PrivacyConsent:
        return cls(
            accepted_version=consent.accepted_version,
            accepted_at=consent.accepted_at,
            current_version=consent.current_version,
            is_current=consent.is_current,
        )


@strawberry.type
class AcceptPrivacyPolicyPayload:
    consent: PrivacyConsent | None
    user_errors: list[UserError]


@strawberry.type
class DeleteMyAccountPayload:
    deleted: bool = strawberry.field(description="True: signed out everywhere, personal data erased.")
    user_errors: list[UserError]
