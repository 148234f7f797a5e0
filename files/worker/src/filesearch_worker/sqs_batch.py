"""The SQS batch layer and the one settlement path.

Every ``DeleteMessageBatch``, ``SendMessageBatch`` and
``ChangeMessageVisibilityBatch`` of the engine is made here: the worker's
settlement, its heartbeat and shutdown release, DLQ recovery and the stress
test's clean-up all go through :class:`SqsBatch`. Calls are chunked into 10s
and every entry comes back either confirmed (``ok``) or failed with a reason;
a call that raises fails its whole chunk. Nothing here raises for an SQS error.

:func:`settle` is the settlement promise in one place. For one batch it:

1. sends the messages whose outcome lives in another queue (the worker's DLQ,
   recovery's redrive to the source queue); only a *confirmed* send makes such
   a message deletable, the others are returned unsettled;
2. calls ``before_delete`` (the worker cancels its heartbeat there: no
   extension may race a delete or a release);
3. deletes the messages whose outcome is durable: those the caller made
   durable before calling (indexed, retry store, archive, already indexed)
   and those confirmed in step 1;
4. releases what is left with a visibility the caller chooses, or returns it
   unsettled for the caller to hold.

A message is therefore never deleted before its outcome is durable somewhere
else. ``tests/proof/`` checks this ordering with a model checker and with
generated fault schedules against this code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: SQS's limit of entries per batch call.
SQS_BATCH = 10

Entry = dict[str, Any]


@dataclass
class BatchResult(Generic[T]):
    """Per-item result of one batch operation: confirmed, or failed with a reason."""

    ok: list[T] = field(default_factory=list)
    failed: list[tuple[T, str]] = field(default_factory=list)

    @property
    def failed_items(self) -> list[T]:
        """The items that failed, without their reasons."""
        return [item for item, _ in self.failed]


def chunks(items: Sequence[T], size: int = SQS_BATCH) -> Iterable[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _reason(failure: dict[str, Any]) -> str:
    code = str(failure.get("Code", "Failed"))
    message = str(failure.get("Message", "") or "")
    return f"{code}: {message}" if message else code


class SqsBatch:
    """Batch calls on one queue."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url

    def _call(
        self,
        operation: str,
        items: Sequence[T],
        entry: Callable[[T], Entry],
    ) -> BatchResult[T]:
        result: BatchResult[T] = BatchResult()
        method = getattr(self.sqs, operation)
        for chunk in chunks(items):
            entries = [{**entry(item), "Id": str(i)} for i, item in enumerate(chunk)]
            try:
                response = method(QueueUrl=self.queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                result.failed.extend((item, f"{type(exc).__name__}: {exc}") for item in chunk)
                continue
            ok = {str(s.get("Id")) for s in response.get("Successful", [])}
            failed = {str(f.get("Id")): _reason(f) for f in response.get("Failed", [])}
            for i, item in enumerate(chunk):
                if str(i) in ok:
                    result.ok.append(item)
                else:
                    # an entry in neither list was not confirmed: treat it as failed
                    result.failed.append((item, failed.get(str(i), "no result for this entry")))
        return result

    def delete(self, items: Sequence[T], handle: Callable[[T], str]) -> BatchResult[T]:
        """DeleteMessageBatch by receipt handle."""
        return self._call("delete_message_batch", items, lambda i: {"ReceiptHandle": handle(i)})

    def send(self, items: Sequence[T], entry: Callable[[T], Entry]) -> BatchResult[T]:
        """SendMessageBatch; ``entry`` builds an entry without its ``Id``."""
        return self._call("send_message_batch", items, entry)

    def change_visibility(
        self,
        items: Sequence[T],
        handle: Callable[[T], str],
        visibility: Callable[[T], int] | int,
    ) -> BatchResult[T]:
        """ChangeMessageVisibilityBatch: extend (heartbeat) or release (0 or a backoff)."""
        timeout = visibility if callable(visibility) else (lambda _item: visibility)
        return self._call(
            "change_message_visibility_batch",
            items,
            lambda i: {"ReceiptHandle": handle(i), "VisibilityTimeout": int(timeout(i))},
        )


@dataclass
class Settlement(Generic[T]):
    """What :func:`settle` did with each item of one batch."""

    deleted: list[T] = field(default_factory=list)
    #: outcome durable but the delete failed: the message comes back and is settled again
    delete_failed: list[tuple[T, str]] = field(default_factory=list)
    #: the send to the other queue was not confirmed: not deleted
    send_failed: list[tuple[T, str]] = field(default_factory=list)
    #: released with a visibility (``release_visibility`` given)
    released: list[T] = field(default_factory=list)
    release_failed: list[tuple[T, str]] = field(default_factory=list)
    #: neither deleted nor released (``release_visibility`` not given): the caller holds them
    unsettled: list[T] = field(default_factory=list)
    #: the send to the other queue was confirmed (then deleted, or in ``delete_failed``)
    sent: list[T] = field(default_factory=list)


def settle(
    queue: SqsBatch,
    handle: Callable[[T], str],
    *,
    durable: Sequence[T] = (),
    send_to: SqsBatch | None = None,
    send: Sequence[T] = (),
    entry: Callable[[T], Entry] | None = None,
    release: Sequence[T] = (),
    release_visibility: Callable[[T], int] | None = None,
    before_delete: Callable[[], None] | None = None,
) -> Settlement[T]:
    """Settle one batch in the one safe order (module docstring).

    ``durable``: items whose outcome is already durable elsewhere; ``send``:
    items to send to ``send_to`` (``entry`` builds each entry) before they may
    be deleted; ``release``: items to leave in ``queue``. Items whose send was
    not confirmed join ``release``.
    """
    result: Settlement[T] = Settlement()
    deletable = list(durable)
    leave = list(release)
    if send:
        if send_to is None or entry is None:
            raise ValueError("settle: send needs send_to and entry")
        sent = send_to.send(send, entry)
        result.sent = sent.ok
        result.send_failed = sent.failed
        deletable.extend(sent.ok)
        leave.extend(sent.failed_items)
    if before_delete is not None:
        before_delete()
    if deletable:
        deleted = queue.delete(deletable, handle)
        result.deleted = deleted.ok
        result.delete_failed = deleted.failed
    if leave:
        if release_visibility is None:
            result.unsettled = leave
        else:
            released = queue.change_visibility(leave, handle, release_visibility)
            result.released = leave
            result.release_failed = released.failed
    return result
