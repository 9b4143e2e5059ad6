"""Speed-ups for moto's server, applied only inside the local runtime's moto process.

None changes what an API call answers; each removes work moto repeats on every request and that
made the local pipeline crawl once a few thousand AWS calls were in flight:

* ``list_of_moto_modules`` lists moto's package directory (``os.listdir`` + ``isdir`` on ~200
  folders) for every request, under the dispatcher's global lock — it is cached;
* the dispatcher infers the backend of every signed request again, under that lock — the answer is
  cached per (signing service, region, ``X-Amz-Target`` service, first path segment, host), which is
  everything the inference reads for a signed request;
* SNS builds and signs a new X.509 certificate for every message it delivers — it builds one per
  subscription key and signs each message with it;
* DynamoDB walks an update expression's syntax tree ten times per ``UpdateItem`` and rebuilds its
  lookup tables at every node, and checks the action counts of every sub-expression — the walks
  keep their order and effect with the lookups hoisted, and the counts are checked on the whole;
* DynamoDB parses the same update expression up to three times per ``UpdateItem`` and deep-copies
  the tree before validating it — each distinct expression is parsed once and trees are copied
  with pickle;
* moto keeps every model instance it ever created for its dashboard — SQS messages and DynamoDB items
  are forgotten every 30 s so a long ``make up`` does not only grow;
* SQS asks the wall clock through naive-datetime arithmetic for every message it looks at (each
  receive scans the queue) — the same value is read from ``time.time()``; and it computes every queue
  attribute, counts included, to read the retention period of each received message — it reads the
  retention period.

Each patch checks that what it replaces exists, and is skipped (logged) if moto changed.
"""

from __future__ import annotations

import base64
import copy
import functools
import logging
import pickle
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)


def _patch_module_listing() -> bool:
    from moto import backends

    original = getattr(backends, "list_of_moto_modules", None)
    if original is None:
        return False
    cached = functools.cache(lambda: tuple(original()))
    backends.list_of_moto_modules = cached  # type: ignore[assignment]
    return True


def _patch_sqs_clock() -> bool:
    from moto.core import utils
    from moto.sqs import models

    if not (hasattr(models, "unix_time") and hasattr(models, "unix_time_millis")):
        return False
    original_unix_time = utils.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original_unix_time(dt) * 1000.0

    models.unix_time = unix_time  # type: ignore[assignment]
    models.unix_time_millis = unix_time_millis  # type: ignore[assignment]

    backend = getattr(models, "SQSBackend", None)
    if backend is not None and hasattr(backend, "is_message_valid_based_on_retention_period"):

        def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
            queue = self.get_queue(queue_name)
            retention = int(queue.message_retention_period)
            return bool(retention + message.sent_timestamp / 1000 > time.time())

        backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    return True


def _patch_sns_signing() -> bool:
    """SNS builds and signs a new X.509 certificate for every message it delivers; build it once per
    subscription key and only sign each message (the notification keeps its shape and a valid
    signature, verifiable with the certificate at ``SigningCertURL``)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from moto.core.utils import iso_8601_datetime_with_milliseconds
    from moto.sns import models

    subscription = getattr(models, "Subscription", None)
    original = getattr(subscription, "get_post_data", None)
    if subscription is None or original is None or not hasattr(subscription, "private_key"):
        return False
    cert_urls: dict[int, str] = {}
    lock = threading.Lock()

    def get_post_data(
        self: Any, message: str, message_id: str, subject: str | None, message_attributes: Any = None
    ) -> dict[str, Any]:
        key = self.private_key()
        with lock:
            cert_url = cert_urls.get(id(key))
        if cert_url is None:
            data: dict[str, Any] = original(self, message, message_id, subject, message_attributes)
            with lock:
                cert_urls[id(key)] = data["SigningCertURL"]
            return data
        timestamp = iso_8601_datetime_with_milliseconds()
        string_to_sign = (
            f"Message\n{message}\nMessageId\n{message_id}\nTimestamp\n{timestamp}\n"
            f"TopicArn\n{self.topic.arn}\nType\nNotification\n"
        )
        signature = key.sign(string_to_sign.encode("UTF-8"), padding.PKCS1v15(), hashes.SHA256())
        post_data: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": self.topic.arn,
            "Message": message,
            "Timestamp": timestamp,
            "SignatureVersion": "2",
            "Signature": base64.b64encode(signature).decode("utf-8"),
            "SigningCertURL": cert_url,
            "UnsubscribeURL": (
                "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:"
                f"{self.account_id}:{self.topic.name}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
            ),
        }
        if subject:
            post_data["Subject"] = subject
        if message_attributes:
            post_data["MessageAttributes"] = message_attributes
        return post_data

    subscription.get_post_data = get_post_data
    return True


def _patch_dynamodb_traversal() -> bool:
    """moto walks each update expression's syntax tree ten times per UpdateItem, rebuilding the set of
    node types it looks for at every node; and its action-count check runs on every sub-expression
    (quadratic) although only the whole expression's counts matter. Same walks, same checks, once."""
    from moto.dynamodb.parsing import ast_nodes, validators

    traverser = getattr(ast_nodes, "DepthFirstTraverser", None)
    counter = getattr(validators, "ActionCountValidator", None)
    if traverser is None or counter is None or not hasattr(counter, "verify_action_counts"):
        return False
    node_type = ast_nodes.Node
    generic_walk = traverser.traverse_node_recursively
    no_pre = traverser.pre_processing_of_child
    original_traverse = traverser.traverse

    def traverse(self: Any, node: Any) -> Any:
        if type(self).traverse_node_recursively is not generic_walk:
            return original_traverse(self, node)
        types = self.nodes_to_be_processed()
        pre = None if type(self).pre_processing_of_child is no_pre else self.pre_processing_of_child
        process = self.process

        def walk(current: Any, child_id: int) -> Any:
            if isinstance(current, node_type):
                parent = current.parent
                children = current.children
                if children is not None:
                    for i, child in enumerate(children):
                        if pre is not None:
                            pre(current, i)
                        walk(child, i)
                if isinstance(current, types):
                    current = process(current)
                    current.parent = parent
                    if parent:
                        parent.children[child_id] = current
            return current

        return walk(node, -1)

    def count_actions_once(self: Any, node: Any) -> Any:
        update_expression = validators.UpdateExpression
        return self.verify_action_counts(node) if isinstance(node, update_expression) else node

    traverser.traverse = traverse
    counter.traverse = count_actions_once
    return True


def _fast_copy(value: Any) -> Any:
    try:
        return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own objects
    except Exception:
        return copy.deepcopy(value)


def _patch_dynamodb_parsing() -> bool:
    """moto tokenizes and parses the same update expression up to three times per ``UpdateItem``, and
    deep-copies the syntax tree before validating it: parse each distinct expression once (a copy of
    the cached tree is handed out each time), and copy trees with pickle, a few times faster."""
    from moto.dynamodb.parsing import expressions, validators

    parser = getattr(expressions, "UpdateExpressionParser", None)
    if parser is None or not hasattr(parser, "make") or not hasattr(validators, "deepcopy"):
        return False
    original_make = parser.make.__func__
    parsed: dict[str, bytes] = {}

    def make(cls: Any, expression_str: str) -> Any:
        if cls is not parser:
            return original_make(cls, expression_str)
        blob = parsed.get(expression_str)
        if blob is None:
            tree = original_make(cls, expression_str)  # a syntax error raises here and is not cached
            if len(parsed) > 2000:
                parsed.clear()
            parsed[expression_str] = pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)
            return tree
        return pickle.loads(blob)  # noqa: S301 - our own cache

    parser.make = classmethod(make)
    validators.deepcopy = _fast_copy
    return True


def _trim_tracked_instances(interval: float = 30.0) -> bool:
    """moto remembers every model instance it ever created (every SQS message, every DynamoDB item
    version) for its dashboard, so a long-running server only grows. Forget those two kinds every
    ``interval`` seconds; the backends keep what is live, and SES's sent messages stay listed."""
    from moto.core.model_instances import model_data

    def trim() -> None:
        while True:
            time.sleep(interval)
            for service, name in (("sqs", "Message"), ("dynamodb", "Item")):
                model = model_data.get(service, {}).get(name)
                if model is not None and hasattr(model, "instances_tracked"):
                    model.instances_tracked = []  # type: ignore[attr-defined]

    threading.Thread(target=trim, name="moto-trim", daemon=True).start()
    return True


def apply() -> list[str]:
    applied = []
    for name, patch in (
        ("module listing", _patch_module_listing),
        ("sqs clock", _patch_sqs_clock),
        ("sns signing", _patch_sns_signing),
        ("dynamodb expression walks", _patch_dynamodb_traversal),
        ("dynamodb expression parsing", _patch_dynamodb_parsing),
        ("tracked instances", _trim_tracked_instances),
    ):
        try:
            if patch():
                applied.append(name)
            else:
                logger.warning("moto tuning %r skipped: moto changed", name)
        except Exception:
            logger.exception("moto tuning %r failed; running without it", name)
    return applied


def cached_dispatcher(create_app: Any) -> Any:
    """moto's ``DomainDispatcherApplication`` that remembers which backend a signed request goes to."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class CachedDispatcher(DomainDispatcherApplication):  # type: ignore[misc]
        def __init__(self, create: Any) -> None:
            super().__init__(create)
            self._cache: dict[tuple[str, ...], Any] = {}
            self._cache_lock = threading.Lock()

        @staticmethod
        def _key(environ: dict[str, Any]) -> tuple[str, ...] | None:
            auth = environ.get("HTTP_AUTHORIZATION") or ""
            path = environ.get("PATH_INFO", "")
            if not auth.startswith("AWS4-HMAC-SHA256") or path.startswith(("/moto-api", "/latest/")):
                return None
            try:
                scope = auth.split(",")[0].split()[1].split("/")
                service, region = scope[3], scope[2]
            except (IndexError, ValueError):
                return None
            target = (environ.get("HTTP_X_AMZ_TARGET") or "").split(".")[0]
            first = path.split("/")[1] if path.count("/") >= 1 else ""
            return (service, region, target, first, environ.get("HTTP_HOST", ""))

        def get_application(self, environ: dict[str, Any]) -> Any:
            key = self._key(environ)
            if key is None:
                return super().get_application(environ)
            app = self._cache.get(key)
            if app is None:
                app = super().get_application(environ)
                with self._cache_lock:
                    self._cache[key] = app
            return app

    return CachedDispatcher(create_app)
