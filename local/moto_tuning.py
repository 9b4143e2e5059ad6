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
* DynamoDB answers a ``Query`` on the table's key by sorting every item of the table — it sorts the
  partition's items only;
* DynamoDB backs up a ``TransactWriteItems`` by deep-copying whole tables (and races concurrent
  writes doing so) — it backs up the items the transaction names, and DynamoDB writes take turns;
* full garbage collections walk every item moto holds (pauses of 0.2–0.8 s with a big table) — the
  long-lived objects are frozen out of them every 2 s;
* Flask builds a request context and binds a URL adapter for every call, a third of a DynamoDB
  call's time — DynamoDB's one route is served without it (``_DirectView``);
* moto keeps every model instance it ever created for its dashboard — SQS messages and DynamoDB items
  are forgotten every 30 s so a long ``make up`` does not only grow;
* SQS asks the wall clock through naive-datetime arithmetic for every message it looks at (each
  receive scans the queue) — the same value is read from ``time.time()``; and it computes every queue
  attribute, counts included, to read the retention period of each received message — it reads the
  retention period.

Each patch first checks that what it replaces is in the installed moto as it expects it (present,
with the same parameters, and for the validation walks the same processors), then replaces it and
checks the replacement is in place. ``apply()`` and ``apply_in_process()`` return a ``TuningReport``:
every patch by name, applied or not and why not. A patch that does not apply is logged as a warning
and the runtime runs without it; ``tests/unit/test_moto_tuning_applies.py`` fails on it instead, so a
moto upgrade cannot switch a patch off unnoticed. ``python -m local.moto_tuning`` prints the report
(exit status 1 if any patch did not apply).
"""

from __future__ import annotations

import base64
import copy
import functools
import inspect
import json
import logging
import pickle
import sys
import threading
import time
import types
import urllib.parse
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


class MotoChanged(Exception):
    """What a patch replaces is not in the installed moto as the patch expects it."""


@dataclass(frozen=True)
class PatchStatus:
    name: str
    applied: bool
    reason: str = ""  # why it did not apply; empty when it did


@dataclass(frozen=True)
class TuningReport:
    """Every patch ``apply()``/``apply_in_process()`` tried, in order, and whether it took."""

    patches: tuple[PatchStatus, ...]

    @property
    def applied(self) -> list[str]:
        return [p.name for p in self.patches if p.applied]

    @property
    def not_applied(self) -> dict[str, str]:
        return {p.name: p.reason for p in self.patches if not p.applied}


def _label(owner: Any) -> str:
    return str(getattr(owner, "__qualname__", None) or getattr(owner, "__name__", None) or type(owner).__name__)


def _require(condition: object, what: str) -> None:
    if not condition:
        raise MotoChanged(what)


def _attr(owner: Any, name: str, params: tuple[str, ...] | None = None) -> Any:
    """``owner.name`` as the patch expects it: present and, if ``params`` is given, a callable taking
    exactly those parameters (names and order: a patch that reads arguments by position relies on
    them)."""
    value = getattr(owner, name, None)
    if value is None:
        raise MotoChanged(f"{_label(owner)}.{name} is missing")
    if params is not None:
        try:
            got = tuple(inspect.signature(value).parameters)
        except (TypeError, ValueError):
            raise MotoChanged(f"{_label(owner)}.{name} is not a function") from None
        if got != params:
            raise MotoChanged(f"{_label(owner)}.{name} takes ({', '.join(got)}), expected ({', '.join(params)})")
    return value


def _replace(owner: Any, name: str, value: Any) -> None:
    """Set ``owner.name`` (a module's or a class's own attribute) and check that it holds."""
    setattr(owner, name, value)
    if vars(owner).get(name) is not value:
        raise MotoChanged(f"{_label(owner)}.{name} could not be replaced")


def _patch_module_listing() -> None:
    from moto import backends

    original = _attr(backends, "list_of_moto_modules", ())
    _replace(backends, "list_of_moto_modules", functools.cache(lambda: tuple(original())))


def _patch_sqs_clock() -> None:
    from moto.core import utils
    from moto.sqs import models

    _require(_attr(models, "unix_time", ("dt",)) is utils.unix_time, "moto.sqs.models.unix_time is not moto's")
    _require(
        _attr(models, "unix_time_millis", ("dt",)) is utils.unix_time_millis,
        "moto.sqs.models.unix_time_millis is not moto's",
    )
    backend = _attr(models, "SQSBackend")
    _attr(backend, "is_message_valid_based_on_retention_period", ("self", "queue_name", "message"))
    _attr(backend, "get_queue", ("self", "queue_name"))
    original_unix_time = utils.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original_unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        retention = int(queue.message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    _replace(models, "unix_time", unix_time)
    _replace(models, "unix_time_millis", unix_time_millis)
    _replace(backend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period)


def _patch_sns_signing() -> None:
    """SNS builds and signs a new X.509 certificate for every message it delivers; build it once per
    subscription key and only sign each message (the notification keeps its shape and a valid
    signature, verifiable with the certificate at ``SigningCertURL``)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from moto.core.utils import iso_8601_datetime_with_milliseconds
    from moto.sns import models

    subscription = _attr(models, "Subscription")
    original = _attr(subscription, "get_post_data", ("self", "message", "message_id", "subject", "message_attributes"))
    _attr(subscription, "private_key", ("self",))
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

    _replace(subscription, "get_post_data", get_post_data)


def _patch_dynamodb_traversal() -> None:
    """moto walks each update expression's syntax tree ten times per UpdateItem, rebuilding the set of
    node types it looks for at every node and asking ``isinstance`` of abstract classes (slow) at
    every node; its action-count check runs on every sub-expression (quadratic) although only the
    whole expression's counts matter, and so does its overlapping-paths check. Same walks, same
    checks, same errors: node types are classified once per (processor, type), the counts are
    checked on the whole, and the overlap check runs on the whole first — the sub-expressions' paths
    are subsets of it, so when the whole passes they all do; when it fails, the original walk runs
    to raise exactly moto's error."""
    from moto.dynamodb.parsing import ast_nodes, validators

    traverser = _attr(ast_nodes, "DepthFirstTraverser")
    counter = _attr(validators, "ActionCountValidator")
    overlaps = _attr(validators, "OverlappingPathsValidator")
    _attr(counter, "verify_action_counts", ("self", "node"))
    _attr(overlaps, "check_for_overlapping_paths", ("self", "node"))
    _attr(validators, "UpdateExpression")
    _attr(traverser, "traverse", ("self", "node"))
    for name in ("traverse_node_recursively", "process", "nodes_to_be_processed", "pre_processing_of_child"):
        _attr(traverser, name)
    _require("traverse" not in vars(counter) and "traverse" not in vars(overlaps), "a validator has its own walk")
    node_type = _attr(ast_nodes, "Node")
    generic_walk = traverser.traverse_node_recursively
    generic_process = traverser.process
    generic_kinds = traverser.nodes_to_be_processed
    no_pre = traverser.pre_processing_of_child
    original_traverse = traverser.traverse
    # (processor class, node type) -> index of the first matching key of its processing map, or -1;
    # moto's process() takes the first key the node is an instance of, in the map's order.
    kinds: dict[tuple[type, type], int] = {}
    is_node: dict[type, bool] = {}

    def traverse(self: Any, node: Any) -> Any:
        cls = type(self)
        if (
            cls.traverse_node_recursively is not generic_walk
            or cls.process is not generic_process
            or cls.nodes_to_be_processed is not generic_kinds
        ):
            return original_traverse(self, node)
        mapping = self._processing_map()
        keys = tuple(mapping)
        handlers = tuple(mapping.values())
        pre = None if cls.pre_processing_of_child is no_pre else self.pre_processing_of_child

        def kind(t: type) -> int:
            k = kinds.get((cls, t))
            if k is None:
                k = next((i for i, key in enumerate(keys) if issubclass(t, key)), -1)
                kinds[(cls, t)] = k
            return k

        def walk(current: Any, child_id: int) -> Any:
            t = type(current)
            node = is_node.get(t)
            if node is None:
                node = is_node[t] = issubclass(t, node_type)
            if node:
                parent = current.parent
                children = current.children
                if children is not None:
                    for i, child in enumerate(children):
                        if pre is not None:
                            pre(current, i)
                        walk(child, i)
                k = kind(t)
                if k >= 0:
                    current = handlers[k](current)
                    current.parent = parent
                    if parent:
                        parent.children[child_id] = current
            return current

        return walk(node, -1)

    update_expression = validators.UpdateExpression

    def count_actions_once(self: Any, node: Any) -> Any:
        return self.verify_action_counts(node) if isinstance(node, update_expression) else node

    def check_overlaps_once(self: Any, node: Any) -> Any:
        if isinstance(node, update_expression):
            try:
                self.check_for_overlapping_paths(node)
            except Exception:
                return original_traverse(self, node)  # moto's own walk raises its own error
        return node

    _replace(traverser, "traverse", traverse)
    _replace(counter, "traverse", count_actions_once)
    _replace(overlaps, "traverse", check_overlaps_once)


def _patch_dynamodb_validation() -> None:
    """An ``UpdateItem``'s expression goes through ten processors, each a full walk of the tree. After
    the two whole-expression checks (run first, on the untouched tree, as moto does), the other
    eight run as two fused walks — [key paths, values, path resolution, functions] then
    [missing paths, operations, type and empty-key checks] — applying at each node, in moto's order,
    every processor that handles it. Each processor's decision at a node reads only the node's
    subtree (already done by every processor of the walk) and its own state, whose events keep
    their order, so a walk that completes builds moto's tree. The split keeps "missing path" after
    ``if_not_exists`` has replaced its argument. If a fused walk raises, moto's own passes run again
    on a fresh copy, to raise moto's own error."""
    from moto.dynamodb.parsing import ast_nodes
    from moto.dynamodb.parsing import validators as v

    names = (
        "ActionCountValidator",
        "OverlappingPathsValidator",
        "UpdateHashRangeKeyValidator",
        "ExpressionAttributeValueProcessor",
        "ExpressionAttributeResolvingProcessor",
        "UpdateExpressionFunctionEvaluator",
        "NoneExistingPathChecker",
        "ExecuteOperations",
        "TypeMismatchValidator",
        "EmptyStringKeyValueValidator",
    )
    validator_cls = _attr(v, "UpdateExpressionValidator")
    base = _attr(v, "Validator")
    traverser = _attr(ast_nodes, "DepthFirstTraverser")
    expected = tuple(_attr(v, n) for n in names)
    generic = (traverser.traverse_node_recursively, traverser.process, traverser.nodes_to_be_processed)
    no_pre = traverser.pre_processing_of_child
    node_type = _attr(ast_nodes, "Node")
    original_init = _attr(
        base,
        "__init__",
        ("self", "expression", "expression_attribute_names", "expression_attribute_values", "item", "table"),
    )
    original_validate = _attr(base, "validate", ("self",))
    _attr(validator_cls, "get_ast_processors", ("self",))
    _require("validate" not in vars(validator_cls), "UpdateExpressionValidator has its own validate")
    # The processors moto builds for an UpdateItem must be these, walking the generic way, or every
    # validate() would take moto's own path (below) and the patch would do nothing.
    table = types.SimpleNamespace(table_key_attrs=[], attr=[], attribute_keys=[])
    probe = types.SimpleNamespace(expression_attribute_names={}, expression_attribute_values={}, item=None, table=table)
    processors = validator_cls.get_ast_processors(probe)
    got = tuple(type(p) for p in processors)
    _require(
        got == expected,
        f"UpdateExpressionValidator builds {[t.__name__ for t in got]}, expected {[t.__name__ for t in expected]}",
    )
    _require(
        all(
            (type(p).traverse_node_recursively, type(p).process, type(p).nodes_to_be_processed) == generic
            for p in processors[2:]
        ),
        "an UpdateExpressionValidator processor walks its own way",
    )
    kinds: dict[tuple[type, type], int] = {}
    is_node: dict[type, bool] = {}

    def fused(processors: list[Any], root: Any) -> Any:
        plans = []
        for p in processors:
            mapping = p._processing_map()
            plans.append((type(p), tuple(mapping), tuple(mapping.values())))
        pres = [p.pre_processing_of_child for p in processors if type(p).pre_processing_of_child is not no_pre]

        def walk(current: Any, child_id: int) -> Any:
            t = type(current)
            node = is_node.get(t)
            if node is None:
                node = is_node[t] = issubclass(t, node_type)
            if not node:
                return current
            parent = current.parent
            children = current.children
            if children is not None:
                for i, child in enumerate(children):
                    for pre in pres:
                        pre(current, i)
                    walk(child, i)
            for cls, keys, handlers in plans:
                t = type(current)
                k = kinds.get((cls, t))
                if k is None:
                    k = kinds[(cls, t)] = next((i for i, key in enumerate(keys) if issubclass(t, key)), -1)
                if k >= 0:
                    current = handlers[k](current)
                    current.parent = parent
                    if parent:
                        parent.children[child_id] = current
            return current

        return walk(root, -1)

    def __init__(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original_init(self, expression, *args, **kwargs)
        self._source_expression = expression

    def validate(self: Any) -> Any:
        processors = self.processors
        if (
            type(self) is not validator_cls
            or tuple(type(p) for p in processors) != expected
            or any(
                (type(p).traverse_node_recursively, type(p).process, type(p).nodes_to_be_processed) != generic
                for p in processors[2:]
            )
        ):
            return original_validate(self)
        try:
            node = self.node_to_validate
            for p in processors[:2]:
                node = p.traverse(node)
            node = fused(processors[2:6], node)
            return fused(processors[6:], node)
        except Exception:
            self.node_to_validate = _fast_copy(self._source_expression)
            self.processors = self.get_ast_processors()
            return original_validate(self)

    _replace(base, "__init__", __init__)
    _replace(base, "validate", validate)


# Syntax trees handed out by the parse cache, by id: (tree, its pickle). A tree from the cache is
# only read by moto's callers (they look up names and values; the validator copies it first), so the
# cache hands out one shared tree per expression and copies it from its pickle without pickling again.
_PARSED_TREES: dict[int, tuple[Any, bytes]] = {}


def _fast_copy(value: Any) -> Any:
    cached = _PARSED_TREES.get(id(value))
    if cached is not None and cached[0] is value:
        return pickle.loads(cached[1])  # noqa: S301 - our own cache
    try:
        return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own objects
    except Exception:
        return copy.deepcopy(value)


def _patch_dynamodb_parsing() -> None:
    """moto tokenizes and parses the same update expression up to three times per ``UpdateItem``, and
    deep-copies the syntax tree before validating it: parse each distinct expression once (moto's
    callers only read the parsed tree, so the cached tree is handed out), and copy trees with pickle
    — from the pickle kept with the cached tree — a few times faster than ``deepcopy``."""
    from moto.dynamodb.parsing import expressions, validators

    parser = _attr(expressions, "UpdateExpressionParser")
    _attr(parser, "make", ("expression_str",))
    _require(isinstance(vars(parser).get("make"), classmethod), "UpdateExpressionParser.make is not a classmethod")
    _require(_attr(validators, "deepcopy") is copy.deepcopy, "moto.dynamodb.parsing.validators.deepcopy is not copy's")
    original_make = parser.make.__func__
    parsed: dict[str, Any] = {}
    lock = threading.Lock()

    def make(cls: Any, expression_str: str) -> Any:
        if cls is not parser:
            return original_make(cls, expression_str)
        tree = parsed.get(expression_str)
        if tree is None:
            tree = original_make(cls, expression_str)  # a syntax error raises here and is not cached
            blob = pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)
            with lock:
                if len(parsed) > 2000:
                    parsed.clear()
                    _PARSED_TREES.clear()
                parsed[expression_str] = tree
                _PARSED_TREES[id(tree)] = (tree, blob)
        return tree

    _replace(parser, "make", classmethod(make))
    _replace(validators, "deepcopy", _fast_copy)


def _patch_dynamodb_lookups() -> None:
    """Three lookups moto repeats on every request: DynamoDB's ~570 reserved words are a list, scanned
    for every attribute name in an expression (a set answers the same ``in``); a response class's
    method names are listed with ``inspect.getmembers`` for every call (classes do not change while
    serving: listed once per class); and ``UpdateItem`` parses its condition expression twice with
    the same names and values (the second parse in a request reuses the first, per thread)."""
    from moto.core import responses as core_responses
    from moto.dynamodb import comparisons
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    words = _attr(ReservedKeywords, "get_reserved_keywords", ())()
    _require(
        isinstance(words, list) and ReservedKeywords.KEYWORDS is words,
        "ReservedKeywords.get_reserved_keywords() does not hand out its KEYWORDS list",
    )
    _attr(core_responses, "method_names_from_class", ("clazz",))
    parser_cls = _attr(comparisons, "ConditionExpressionParser")
    _attr(parser_cls, "parse", ("self",))
    _attr(
        parser_cls,
        "__init__",
        ("self", "condition_expression", "expression_attribute_names", "expression_attribute_values"),
    )

    class _KeywordList(list):  # type: ignore[type-arg]
        """The same list, with a set behind ``in``."""

        def __init__(self, words: list[str]) -> None:
            super().__init__(words)
            self._set = frozenset(words)

        def __contains__(self, word: object) -> bool:
            return word in self._set

    keywords = _KeywordList(words)
    _replace(ReservedKeywords, "KEYWORDS", keywords)
    _require(ReservedKeywords.get_reserved_keywords() is keywords, "ReservedKeywords ignores its KEYWORDS")

    listed = functools.cache(core_responses.method_names_from_class)
    _replace(core_responses, "method_names_from_class", lambda clazz: list(listed(clazz)))

    original_parse = parser_cls.parse
    recent = threading.local()

    def parse(self: Any) -> Any:
        key = (
            self.condition_expression,
            repr(self.expression_attribute_names),
            repr(self.expression_attribute_values),
        )
        last = getattr(recent, "last", None)
        if last is not None and last[0] == key:
            _, op, names, values = last
        else:
            op = original_parse(self)
            names, values = list(self.expr_attr_names_found), list(self.expr_attr_values_found)
            recent.last = (key, op, names, values)
            return op
        self.expr_attr_names_found.extend(names)
        self.expr_attr_values_found.extend(values)
        return op

    _replace(parser_cls, "parse", parse)


def _patch_json_serializer() -> None:
    """moto serializes a JSON response (DynamoDB's) member by member through five alias providers,
    asking each for every member of the shape — for every attribute of every item, ten times (one
    per member of ``AttributeValue``). When the value is a plain ``dict`` whose keys are all members
    of the shape, and no alias of the shape could apply (no serialization name, no name prefixed
    with the shape's or ``dict``, no member whose snake_case form is another member), every alias
    lookup resolves to the key itself: the members present are serialized directly, in the shape's
    order, as moto would. Anything else takes moto's own path."""
    from botocore import xform_name
    from moto.core import serialize

    json_serializer = _attr(serialize, "BaseJSONSerializer")
    picker_cls = _attr(serialize, "XFormedAttributePicker")
    providers = _attr(serialize, "DEFAULT_ALIAS_PROVIDERS")
    original = _attr(json_serializer, "_serialize_type_structure", ("self", "serialized", "value", "shape", "key"))
    _attr(json_serializer, "_serialize", ("self", "serialized", "value", "shape", "key"))
    _attr(json_serializer, "_default_serialize", ("self", "serialized", "value", "shape", "key"))
    plain: dict[int, tuple[Any, bool]] = {}  # id(shape) -> (shape, no alias can apply)

    def aliases_inert(shape: Any) -> bool:
        cached = plain.get(id(shape))
        if cached is not None and cached[0] is shape:
            return cached[1]
        members = shape.members
        inert = not shape.is_document_type and all(
            member.serialization.get("name", name) == name
            and not name.lower().startswith((shape.name.lower(), "dict"))
            and (xform_name(name) == name or xform_name(name) not in members)
            for name, member in members.items()
        )
        plain[id(shape)] = (shape, inert)
        return inert

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        picker = getattr(self, "_value_picker", None)
        if (
            type(value) is dict
            and type(picker) is picker_cls
            and not picker.response_transformers
            and picker.alias_providers is providers
            and aliases_inert(shape)
            and value.keys() <= shape.members.keys()
        ):
            wrapper = self.MAP_TYPE() if key else serialized
            for member_key, member_shape in shape.members.items():
                member_shape.parent = shape
                member_value = value.get(member_key)
                if member_value is not None:
                    self._serialize(wrapper, member_value, member_shape, member_key)
            if key:
                self._default_serialize(serialized, wrapper, shape, key)
            return
        original(self, serialized, value, shape, key)

    _replace(json_serializer, "_serialize_type_structure", _serialize_type_structure)


def _patch_dynamodb_partition_query() -> None:
    """moto answers a ``Query`` on a table's own key by sorting every item of the table and keeping
    those of the partition — the job table holds a record per recipient, so reading a campaign
    (its META and CONTENT items) got slower with every email sent. The query is given the items of
    its partition only, sorted the same way; the rest of moto's query (range conditions, order,
    limits, filters, pagination) runs unchanged. Index queries and tables without a sort key keep
    moto's own path."""
    from moto.dynamodb.models import table as table_module

    table_cls = _attr(table_module, "Table")
    _attr(table_cls, "all_items", ("self",))
    _attr(table_cls, "has_range_key")
    # index_name is read by position (args[6]) as well as by name
    original = _attr(
        table_cls,
        "query",
        (
            "self",
            "hash_key",
            "range_comparison",
            "range_objs",
            "limit",
            "exclusive_start_key",
            "scan_index_forward",
            "projection_expressions",
            "index_name",
            "consistent_read",
            "filter_expression",
            "hash_key_conditions",
            "range_key_conditions",
            "filter_kwargs",
        ),
    )

    def sort_key(item: Any) -> Any:  # the key moto's all_items() sorts by
        return (item.hash_key, item.range_key) if item.range_key else item.hash_key

    class _OnePartition:
        def __init__(self, table: Any, items: list[Any]) -> None:
            self._table = table
            self._items = items

        def __getattr__(self, name: str) -> Any:
            return getattr(self._table, name)

        def all_items(self) -> list[Any]:
            return self._items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None or not self.has_range_key:
            return original(self, hash_key, *args, **kwargs)
        partition = self.items.get(hash_key) or {}
        return original(_OnePartition(self, sorted(partition.values(), key=sort_key)), hash_key, *args, **kwargs)

    _replace(table_cls, "query", query)


def _patch_dynamodb_transactions() -> None:
    """moto backs up a ``TransactWriteItems`` by deep-copying every table it names — the whole job
    table, a record per recipient — and rolls back by putting the copy in the table's place. That
    costs more with every email sent, and under concurrent requests (a server thread each) the copy
    races other threads' writes ("dictionary changed size during iteration", the requests fail) and a
    rollback drops writes other requests made meanwhile. Here the items the transaction names are
    backed up (a deep copy each) instead, and a rollback puts exactly those back; DynamoDB writes of
    one moto process run one at a time (a lock around put/update/delete/batch write/transaction —
    moto's work holds the interpreter lock anyway), so a transaction is atomic against other writes.
    Tables with a stream keep moto's own way (a rollback there also rewinds the stream)."""
    from moto.dynamodb import exceptions, models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend = _attr(models, "DynamoDBBackend")
    methods = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
    for m in methods[:-1]:
        _attr(backend, m)
    _attr(backend, "transact_write_items", ("self", "transact_items"))
    _require(_attr(models, "copy") is copy, "moto.dynamodb.models.copy is not the copy module")
    _attr(Table, "get_item", ("self", "hash_key", "range_key", "projection_expression"))
    set_by_init = set(Table.__init__.__code__.co_names)  # the attributes Table.__init__ assigns, among others
    for name in ("stream_shard", "hash_key_attr", "range_key_attr", "items"):
        _require(name in set_by_init, f"Table no longer has {name}")
    lock = threading.RLock()
    state = threading.local()
    rolled_back = tuple(
        getattr(exceptions, name)
        for name in ("TransactionCanceledException", "MultipleTransactionsException", "MockValidationException")
        if hasattr(exceptions, name)
    )

    class _CopyShim:
        """``copy`` as moto's DynamoDB models see it: inside a transaction, a table is not copied."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if getattr(state, "transaction", False) and isinstance(value, Table):
                return value  # the items are backed up instead (below)
            return copy.deepcopy(value, memo)

    def locked(method: Any) -> Any:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return call

    def touched(self: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]] | None:
        """(table, hash key, range key) of every item the transaction names; None: use moto's way."""
        keys = []
        for entry in transact_items:
            if not isinstance(entry, dict) or len(entry) != 1:
                return None
            op_type, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None or table.stream_shard is not None:
                return None
            key = op.get("Item") if op_type == "Put" else op.get("Key")
            try:
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            except (KeyError, TypeError):
                return None
            keys.append((table, hash_key, range_key))
        return keys

    original_transact = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            keys = touched(self, transact_items)
            if keys is None:
                return original_transact(self, transact_items)
            saved = []
            for table, hash_key, range_key in keys:
                had_partition = hash_key in table.items
                saved.append(
                    (table, hash_key, range_key, had_partition, copy.deepcopy(table.get_item(hash_key, range_key)))
                )
            state.transaction = True
            try:
                return original_transact(self, transact_items)
            except Exception as exc:
                if isinstance(exc, rolled_back):  # what moto rolls back after
                    for table, hash_key, range_key, had_partition, item in reversed(saved):
                        _restore(table, hash_key, range_key, had_partition, item)
                raise
            finally:
                state.transaction = False

    for name in methods[:-1]:
        _replace(backend, name, locked(getattr(backend, name)))
    _replace(backend, "transact_write_items", transact_write_items)
    _replace(models, "copy", _CopyShim())


def _restore(table: Any, hash_key: Any, range_key: Any, had_partition: bool, item: Any) -> None:
    """Put one item back as it was before a transaction (absent: removed)."""
    if table.range_key_attr:
        partition = table.items.get(hash_key)
        if item is not None:
            table.items[hash_key][range_key] = item
        elif partition is not None:
            partition.pop(range_key, None)
            if not partition and not had_partition:
                del table.items[hash_key]
    elif item is not None:
        table.items[hash_key] = item
    else:
        table.items.pop(hash_key, None)


def _trim_tracked_instances(interval: float = 30.0) -> None:
    """moto remembers every model instance it ever created (every SQS message, every DynamoDB item
    version) for its dashboard, so a long-running server only grows. Forget those two kinds every
    ``interval`` seconds; the backends keep what is live, and SES's sent messages stay listed."""
    from moto.core.model_instances import model_data

    _require(isinstance(model_data, dict), "moto.core.model_instances.model_data is not a dict")
    for service, name in (("sqs", "Message"), ("dynamodb", "Item")):
        _require(
            hasattr(model_data.get(service, {}).get(name), "instances_tracked"),
            f"moto does not track {service} {name} instances",
        )

    def trim() -> None:
        while True:
            time.sleep(interval)
            for service, name in (("sqs", "Message"), ("dynamodb", "Item")):
                model = model_data.get(service, {}).get(name)
                if model is not None and hasattr(model, "instances_tracked"):
                    model.instances_tracked = []  # type: ignore[attr-defined]

    threading.Thread(target=trim, name="moto-trim", daemon=True).start()


def _freeze_long_lived(interval: float = 2.0) -> None:
    """moto keeps every item, message and model in Python objects; CPython's full garbage collection
    walks all of them, and with a table of a few ten thousand records it paused the DynamoDB process
    for 0.2–0.8 s at a time (measured with ``gc.callbacks``) — every AWS call waiting behind it.
    Every ``interval`` seconds the young generations are collected (milliseconds) and what survives
    is moved to the permanent generation (``gc.freeze``), so full collections only walk what is new.
    Garbage cycles are collected young as before; only a cycle that outlives two young collections
    and dies later is left uncollected."""
    import gc

    _require(hasattr(gc, "freeze"), "gc.freeze is missing")

    def freeze() -> None:
        while True:
            time.sleep(interval)
            gc.collect(1)
            gc.freeze()

    threading.Thread(target=freeze, name="moto-gc-freeze", daemon=True).start()


def _check_dispatcher() -> None:
    """``cached_dispatcher`` subclasses moto's dispatcher (nothing to replace here: checked only)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    _attr(DomainDispatcherApplication, "get_application", ("self", "environ"))
    _attr(DomainDispatcherApplication, "__call__", ("self", "environ", "start_response"))
    _attr(DomainDispatcherApplication, "__init__", ("self", "create_app"))


def _check_direct_view() -> None:
    """``cached_dispatcher`` serves DynamoDB without Flask only if ``_DirectView`` accepts moto's
    DynamoDB app; otherwise every call would quietly go through Flask (checked here on a fresh app)."""
    from moto.moto_server.werkzeug_app import create_backend_app

    try:
        _DirectView(create_backend_app("dynamodb"))
    except (LookupError, AttributeError, ImportError, TypeError, IndexError) as exc:
        raise MotoChanged(f"DynamoDB's app is not served directly: {exc}") from None


# What moto's backends do per request: these patches apply as well to moto in process (mock_aws).
_BACKEND_PATCHES: tuple[tuple[str, Any], ...] = (
    ("sqs clock", _patch_sqs_clock),
    ("sns signing", _patch_sns_signing),
    ("dynamodb expression walks", _patch_dynamodb_traversal),
    ("dynamodb expression parsing", _patch_dynamodb_parsing),
    ("dynamodb validation walks", _patch_dynamodb_validation),
    ("dynamodb lookups", _patch_dynamodb_lookups),
    ("dynamodb partition query", _patch_dynamodb_partition_query),
    ("dynamodb transactions", _patch_dynamodb_transactions),
)
# The server's: moto's own server process only (apply()).
_SERVER_PATCHES: tuple[tuple[str, Any], ...] = (
    ("module listing", _patch_module_listing),
    *_BACKEND_PATCHES,
    ("json serializer", _patch_json_serializer),
    ("tracked instances", _trim_tracked_instances),
    ("long-lived objects out of full collections", _freeze_long_lived),
    ("dispatcher backend cache", _check_dispatcher),
    ("dynamodb without flask", _check_direct_view),
)
# Each patch's outcome, the first time it was tried in this process: a patch is applied once (a
# second apply() reports the first outcome instead of wrapping moto's functions twice).
_OUTCOMES: dict[str, PatchStatus] = {}
_OUTCOMES_LOCK = threading.Lock()


def apply_in_process() -> TuningReport:
    """The backend patches only, for moto in process (the AWS-requests benchmark's 10,000-recipient
    run, whose transactions would otherwise copy the whole table each time)."""
    return _apply(_BACKEND_PATCHES)


def apply() -> TuningReport:
    """Every patch, for the local runtime's moto server process."""
    return _apply(_SERVER_PATCHES)


def _apply(patches: tuple[tuple[str, Any], ...]) -> TuningReport:
    """Try each patch; one that does not apply is reported and logged (a warning), never raised:
    the runtime runs on stock moto for that part. The test of the report is what fails."""
    outcomes = []
    with _OUTCOMES_LOCK:
        for name, patch in patches:
            status = _OUTCOMES.get(name)
            if status is None:
                try:
                    patch()
                    status = PatchStatus(name, applied=True)
                except MotoChanged as exc:
                    status = PatchStatus(name, applied=False, reason=str(exc))
                    logger.warning("moto tuning %r not applied, running without it: %s", name, exc)
                except Exception as exc:
                    status = PatchStatus(name, applied=False, reason=f"failed: {exc!r}")
                    logger.exception("moto tuning %r failed, running without it", name)
                _OUTCOMES[name] = status
            outcomes.append(status)
    return TuningReport(tuple(outcomes))


def _main(argv: list[str]) -> int:
    """``python -m local.moto_tuning [--in-process]``: apply the patches in this (throwaway) process
    and print the report as JSON; exit status 1 if any did not apply."""
    report = apply_in_process() if "--in-process" in argv else apply()
    print(json.dumps([{"name": p.name, "applied": p.applied, "reason": p.reason} for p in report.patches]))
    return 1 if report.not_applied else 0


class _DirectView:
    """One backend app's ``POST /`` without Flask's request machinery (DynamoDB's only route).

    Flask spends a third of moto's time per DynamoDB call building a request context and binding a
    URL adapter to route every request to the app's one rule. This calls that rule's view as moto's
    own ``convert_to_flask_response`` does (``normalize_request``, the request recorder, the
    handler's ``ClientError`` as a 400, the same ``Response``), then adds what the app's only
    ``after_request`` hook — flask-cors — adds, with flask-cors's own functions. Used only for an app
    whose routing, hooks and view are exactly that (checked once per app); anything else — another
    path, method, a request with an ``Origin`` — goes through Flask."""

    def __init__(self, app: Any) -> None:
        from flask_cors.core import get_cors_headers, try_match_pattern
        from moto.core.utils import convert_to_flask_response, normalize_request
        from moto.moto_api import recorder

        rules = list(app.url_map.iter_rules())
        hooks = app.after_request_funcs.get(None, [])
        if (
            len(rules) != 1
            or rules[0].rule != "/"
            or "POST" not in (rules[0].methods or ())
            or any(app.before_request_funcs.values())
            or any(app.teardown_request_funcs.values())
            or any(app.url_value_preprocessors.values())
            or set(app.after_request_funcs) - {None}
            or len(hooks) != 1
            or hooks[0].__name__ != "cors_after_request"
            or hooks[0].__code__.co_freevars != ("resources",)
        ):
            raise LookupError("not a single-route app")
        view = app.view_functions[rules[0].endpoint]
        if type(view) is not convert_to_flask_response:
            raise LookupError("not moto's view")
        self.app = app
        self.callback = view.callback
        self.resources = hooks[0].__closure__[0].cell_contents
        self._normalize, self._recorder = normalize_request, recorder
        self._cors_headers, self._match = get_cors_headers, try_match_pattern

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from botocore.exceptions import ClientError
        from werkzeug.exceptions import HTTPException

        request = self.app.request_class(environ)
        try:
            request = self._normalize(request)
            self._recorder._record_request(request)
            try:
                result = self.callback(request, request.raw_url, dict(request.headers))
            except ClientError as exc:
                result = 400, {}, exc.response["Error"]["Message"]
            status, headers, content = result if len(result) == 3 else (200, {}, result)
            response = self.app.response_class(response=content, status=status, headers=headers)
        except HTTPException as exc:  # Flask answers these with the exception's own response
            response = exc.get_response(environ)
        if not response.headers.get("Access-Control-Allow-Origin"):
            path = urllib.parse.unquote(request.path)
            for pattern, options in self.resources:
                if self._match(path, pattern, caseSensitive=True):
                    for name, value in self._cors_headers(options, request.headers, request.method).items():
                        response.headers.add(name, value)
                    break
        return response(environ, start_response)


def cached_dispatcher(create_app: Any) -> Any:
    """moto's ``DomainDispatcherApplication`` that remembers which backend a signed request goes to,
    and serves DynamoDB's ``POST /`` without Flask's request context (``_DirectView``)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class CachedDispatcher(DomainDispatcherApplication):  # type: ignore[misc]
        def __init__(self, create: Any) -> None:
            super().__init__(create)
            self._cache: dict[tuple[str, ...], Any] = {}
            self._cache_lock = threading.Lock()
            self._direct: dict[int, Any] = {}

        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            app = self.get_application(environ)
            if (
                environ.get("REQUEST_METHOD") == "POST"
                and environ.get("PATH_INFO") == "/"
                and "HTTP_ORIGIN" not in environ
                and str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_")
            ):
                direct = self._direct.get(id(app))
                if direct is None:
                    try:
                        direct = (app, _DirectView(app))
                    except (LookupError, AttributeError, ImportError, TypeError, IndexError):
                        direct = (app, None)
                    self._direct[id(app)] = direct
                if direct[0] is app and direct[1] is not None:
                    return direct[1](environ, start_response)
            return app(environ, start_response)

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


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
