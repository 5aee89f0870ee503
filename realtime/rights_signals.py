"""Rights changed in this process (a page, the admin, `manage.py`): nudge every Daphne to re-check at once.

Connected by `RealtimeConfig.ready` when `REDIS_URL` is set, in every process that loads Django. Each
receiver names whose sockets to re-check (`realtime/cluster.py`) after the change commits; the re-check
reads the database, so naming too many costs a read, never a wrong close. What it does not see (a raw
SQL update, a session that merely expires) the periodic re-check finds within `RIGHTS_RECHECK_S`.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from devices.models import Device, ServiceAccount, Ward
from devices.signals import pump_ward_changed
from realtime.cluster import EVERYONE, RECHECK, nudge_on_commit
from realtime.sio.auth import session_hash

CHANGED = ("post_add", "post_remove", "post_clear")


def on_session_deleted(sender: Any, instance: Session, **kwargs: Any) -> None:
    """A sign-out (or a session deleted in the admin): its sockets on every process. Not for an expired session
    (`clearsessions` deletes thousands): the re-check already closes those."""
    if instance.expire_date > timezone.now():
        nudge_on_commit(RECHECK, [f"session:{session_hash(instance.session_key)}"])


def on_user_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """A user saved (deactivated, staff status, password): not for the `last_login` of every sign-in."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    nudge_on_commit(RECHECK, [f"user:{instance.pk}"])


def on_user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    nudge_on_commit(RECHECK, [f"user:{instance.pk}"])


def on_account_changed(sender: Any, instance: ServiceAccount, **kwargs: Any) -> None:
    """A service account saved (revoked) or deleted."""
    nudge_on_commit(RECHECK, [f"account:{instance.pk}"])


def member_names(prefix: str, owner_model: type) -> Any:
    """A `m2m_changed` receiver naming the members (`prefix:pk`) whose rights a membership change touched."""

    def on_members_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any):
        if action not in CHANGED:
            return
        if isinstance(instance, owner_model):  # from the member's side: this member
            names = [f"{prefix}:{instance.pk}"]
        elif pk_set:
            names = [f"{prefix}:{pk}" for pk in pk_set]
        else:  # cleared from the other side: its former members are no longer known
            names = [EVERYONE]
        nudge_on_commit(RECHECK, names)

    return on_members_changed


def on_everyone_changed(sender: Any, action: str = "post_delete", **kwargs: Any) -> None:
    """A ward deleted or a group's permissions changed: every socket's rights may differ."""
    if action in (*CHANGED, "post_delete"):
        nudge_on_commit(RECHECK, [EVERYONE])


def on_pump_ward_changed(sender: Any, **kwargs: Any) -> None:
    """A pump moved to another ward: the old ward's nurses (and accounts) may no longer watch it, at once."""
    nudge_on_commit(RECHECK, [EVERYONE])


def rights_signals_connect() -> None:
    """Connect the receivers (idempotent)."""
    user_model = get_user_model()
    post_delete.connect(on_session_deleted, sender=Session, dispatch_uid="cluster-session-deleted")
    post_save.connect(on_user_saved, sender=user_model, dispatch_uid="cluster-user-saved")
    post_delete.connect(on_user_deleted, sender=user_model, dispatch_uid="cluster-user-deleted")
    post_save.connect(on_account_changed, sender=ServiceAccount, dispatch_uid="cluster-account-saved")
    post_delete.connect(on_account_changed, sender=ServiceAccount, dispatch_uid="cluster-account-deleted")
    post_delete.connect(on_everyone_changed, sender=Ward, dispatch_uid="cluster-ward-deleted")
    pump_ward_changed.connect(on_pump_ward_changed, sender=Device, dispatch_uid="cluster-pump-ward-changed")
    memberships = [
        (Ward.members.through, "user", user_model),
        (user_model.groups.through, "user", user_model),
        (ServiceAccount.wards.through, "account", ServiceAccount),
    ]
    for through, prefix, owner in memberships:
        m2m_changed.connect(member_names(prefix, owner), sender=through, weak=False,
                            dispatch_uid=f"cluster-members-{through._meta.label}")  # fmt: skip
    m2m_changed.connect(on_everyone_changed, sender=Group.permissions.through, dispatch_uid="cluster-group-perms")
