"""Service accounts: create (the token is shown once) and revoke."""

from django.dispatch import Signal
from django.utils import timezone

from devices.models import ServiceAccount, Ward
from devices.models.accounts import generate_token, hash_token

# Sent after a token is revoked (kwargs: account), so open connections made with it are closed.
service_account_revoked = Signal()


def service_account_create(
    *, name: str, wards: list[Ward] | None = None, all_wards: bool = False
) -> tuple[ServiceAccount, str]:
    """Create a service account; returns it with its token, which is never stored in clear."""
    token = generate_token()
    account = ServiceAccount.objects.create(
        name=name, token_hash=hash_token(token), token_hint=token[:8], all_wards=all_wards
    )
    if wards:
        account.wards.set(wards)
    return account, token


def service_account_revoke(*, account: ServiceAccount) -> ServiceAccount:
    """Revoke a token: sockets opened with it are refused from now on."""
    if account.revoked_at is None:
        account.revoked_at = timezone.now()
        account.save(update_fields=["revoked_at"])
        service_account_revoked.send(sender=ServiceAccount, account=account)
    return account
