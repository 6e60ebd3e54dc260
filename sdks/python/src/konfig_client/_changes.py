"""The ``protection`` and ``change_requests`` groups of ``Konfig`` and ``AsyncKonfig``.

A write to a protected namespace does not commit: ``configs.set`` (and documents, imports,
rollbacks) answers the change request it went into (``{"id", "status": "draft", …}``), which
its author submits, others approve, and the author or an approver merges.
"""

from __future__ import annotations

from typing import Any

from konfig_client import _change_operations as ops
from konfig_client._async_resources import _Group as _AsyncGroup
from konfig_client._change_operations import Ref
from konfig_client._resources import _Group

Entry = dict[str, Any]
Items = list[dict[str, Any]]  # an alias: the groups' own ``list`` methods shadow the builtin


def _comment(comment: str | None) -> Entry | None:
    return None if comment is None else {"comment": comment}


class Protection(_Group):
    """Protection policies: namespaces changed only through approved change requests."""

    def list(self) -> Items:
        """The tenant's policies."""
        return self._run(ops.list_policies())

    def create(self, namespaces: str, **rules: Any) -> Entry:
        """Protect the namespaces a pattern matches (admins): ``approvals_required``,
        ``approvers`` (``[{"role": "admin"}, {"group": "sre"}]``), ``allow_self_approval``,
        ``enforcement`` (``hard`` or ``soft``)."""
        return self._run(ops.create_policy({"namespaces": namespaces, **rules}))

    def get(self, policy_id: Ref) -> Entry:
        """One policy."""
        return self._run(ops.get_policy(policy_id))

    def update(self, policy_id: Ref, **changes: Any) -> Entry:
        """Change the fields given of a policy (admins)."""
        return self._run(ops.update_policy(policy_id, changes))

    def delete(self, policy_id: Ref) -> None:
        """Remove a policy (admins)."""
        self._run(ops.delete_policy(policy_id))


class ChangeRequests(_Group):
    """Change requests: list, read, submit, review, merge."""

    def list(
        self,
        *,
        namespace_id: Ref | None = None,
        status: str | None = None,
        mine: bool = False,
        waiting_for_me: bool = False,
        limit: int | None = None,
    ) -> Items:
        """Change requests, newest first (``waiting_for_me``: open ones you may approve)."""
        return self._run(
            ops.list_requests(
                namespace_id=namespace_id,
                status=status,
                mine=mine,
                waiting_for_me=waiting_for_me,
                limit=limit,
            )
        )

    def get(self, request_id: Ref, *, reveal: bool = False) -> Entry:
        """One request: its diff (secrets masked unless revealed) and conversation."""
        return self._run(ops.get_request(request_id, reveal=reveal))

    def submit(self, request_id: Ref, *, title: str | None = None) -> Entry:
        """Hand your draft over for review."""
        return self._run(ops.act(request_id, "submit", None if title is None else {"title": title}))

    def approve(self, request_id: Ref, *, comment: str | None = None) -> Entry:
        """Approve an open request (not your own, unless the policy allows it)."""
        return self._run(ops.act(request_id, "approve", _comment(comment)))

    def reject(self, request_id: Ref, *, comment: str | None = None) -> Entry:
        """Reject a request (an approver) or withdraw it (its author)."""
        return self._run(ops.act(request_id, "reject", _comment(comment)))

    def merge(self, request_id: Ref) -> Entry:
        """Commit an approved request as one revision."""
        return self._run(ops.act(request_id, "merge"))

    def comment(self, request_id: Ref, body: str) -> Entry:
        """Add to a request's conversation."""
        return self._run(ops.act(request_id, "comment", {"body": body}))


class AsyncProtection(_AsyncGroup):
    """Protection policies: namespaces changed only through approved change requests."""

    async def list(self) -> Items:
        """The tenant's policies."""
        return await self._run(ops.list_policies())

    async def create(self, namespaces: str, **rules: Any) -> Entry:
        """Protect the namespaces a pattern matches (admins)."""
        return await self._run(ops.create_policy({"namespaces": namespaces, **rules}))

    async def get(self, policy_id: Ref) -> Entry:
        """One policy."""
        return await self._run(ops.get_policy(policy_id))

    async def update(self, policy_id: Ref, **changes: Any) -> Entry:
        """Change the fields given of a policy (admins)."""
        return await self._run(ops.update_policy(policy_id, changes))

    async def delete(self, policy_id: Ref) -> None:
        """Remove a policy (admins)."""
        await self._run(ops.delete_policy(policy_id))


class AsyncChangeRequests(_AsyncGroup):
    """Change requests: list, read, submit, review, merge."""

    async def list(
        self,
        *,
        namespace_id: Ref | None = None,
        status: str | None = None,
        mine: bool = False,
        waiting_for_me: bool = False,
        limit: int | None = None,
    ) -> Items:
        """Change requests, newest first (``waiting_for_me``: open ones you may approve)."""
        return await self._run(
            ops.list_requests(
                namespace_id=namespace_id,
                status=status,
                mine=mine,
                waiting_for_me=waiting_for_me,
                limit=limit,
            )
        )

    async def get(self, request_id: Ref, *, reveal: bool = False) -> Entry:
        """One request: its diff (secrets masked unless revealed) and conversation."""
        return await self._run(ops.get_request(request_id, reveal=reveal))

    async def submit(self, request_id: Ref, *, title: str | None = None) -> Entry:
        """Hand your draft over for review."""
        body = None if title is None else {"title": title}
        return await self._run(ops.act(request_id, "submit", body))

    async def approve(self, request_id: Ref, *, comment: str | None = None) -> Entry:
        """Approve an open request (not your own, unless the policy allows it)."""
        return await self._run(ops.act(request_id, "approve", _comment(comment)))

    async def reject(self, request_id: Ref, *, comment: str | None = None) -> Entry:
        """Reject a request (an approver) or withdraw it (its author)."""
        return await self._run(ops.act(request_id, "reject", _comment(comment)))

    async def merge(self, request_id: Ref) -> Entry:
        """Commit an approved request as one revision."""
        return await self._run(ops.act(request_id, "merge"))

    async def comment(self, request_id: Ref, body: str) -> Entry:
        """Add to a request's conversation."""
        return await self._run(ops.act(request_id, "comment", {"body": body}))
