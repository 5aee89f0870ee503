"""Service accounts: API tokens for integrations that cannot sign in."""

import hashlib
import secrets

from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "pst_"


def hash_token(token: str) -> str:
    """The stored form of a token (SHA-256 hex); tokens are never stored in clear."""
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token() -> str:
    """A new random API token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ServiceAccount(models.Model):
    """An integration's identity; it sees the pumps of its wards and can only watch."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=12, editable=False, help_text="The token's first characters.")
    wards = models.ManyToManyField("devices.Ward", blank=True, related_name="service_accounts")
    all_wards = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
