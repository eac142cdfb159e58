"""Settings from the environment, the topic contract and its schemas, and key partitioning."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

import topics
from processor.contacts import ID, KNOWN_FIELDS
from processor.errors import ConfigError
from processor.events import ITEM_FIELDS
from processor.routing import murmur2, partition_for, partition_of
from processor.settings import MismatchPolicy, Settings, Store, describe

SCHEMA_DIR = Path(topics.__file__).resolve().parent / "schemas"
ROLES = {
    "orders_events": ("orders.events", "TOPIC_ORDERS_EVENTS"),
    "orders_events_rekeyed": ("orders.events.rekeyed", "TOPIC_ORDERS_EVENTS_REKEYED"),
    "contacts": ("contacts", "TOPIC_CONTACTS"),
    "orders_rfm": ("orders.rfm", "TOPIC_ORDERS_RFM"),
    "orders_dlq": ("orders.dlq", "TOPIC_ORDERS_DLQ"),
}


# --- Settings.from_env ------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_prefix == "op:"
    assert settings.app_id == "order-processor"
    assert settings.partitions == 4
    assert settings.replication_factor == 1
    assert settings.store is Store.ROCKSDB
    assert settings.data_dir == Path(".run/worker-data")
    assert (settings.web_host, settings.web_port) == ("127.0.0.1", 6066)
    assert settings.total_mismatch is MismatchPolicy.FLAG
    assert settings.contact_id_params == ()
    assert settings.history_limit == 50
    assert settings.max_event_bytes == 1_048_576
    assert settings.max_depth == 32
    assert settings.create_topics is True
    assert (settings.fetch_max_wait_ms, settings.fetch_min_bytes) == (5, 65_536)
    assert settings.consumer_thread is False
    assert settings.topic_env == {}


def test_default_partitions_come_from_the_contract() -> None:
    contract = json.loads((SCHEMA_DIR.parent / "contract.json").read_text())
    assert Settings.from_env({}).partitions == contract["partitions"] == topics.default_partitions()


@pytest.mark.parametrize(
    ("env", "attr", "expected"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers", "k1:9092,k2:9092"),
        ("REDIS_URL", "redis_url", "redis://r:6380/2"),
        ("REDIS_KEY_PREFIX", "redis_prefix", "test-1:"),
        ("PROCESSOR_APP_ID", "app_id", "op-test"),
        ("PROCESSOR_PARTITIONS", "partitions", 8),
        ("PROCESSOR_REPLICATION_FACTOR", "replication_factor", 3),
        ("PROCESSOR_DATA_DIR", "data_dir", Path("/var/lib/op")),
        ("PROCESSOR_WEB_HOST", "web_host", "0.0.0.0"),
        ("PROCESSOR_WEB_PORT", "web_port", 7000),
        ("PROCESSOR_HISTORY_LIMIT", "history_limit", 5),
        ("PROCESSOR_MAX_EVENT_BYTES", "max_event_bytes", 2048),
        ("PROCESSOR_MAX_DEPTH", "max_depth", 10),
        ("PROCESSOR_ROCKSDB_MEMORY_MB", "rocksdb_memory_mb", 64),
        ("PROCESSOR_ROCKSDB_WRITE_MB_PER_S", "rocksdb_write_mb_per_s", 0),
        ("PROCESSOR_WEB_BIND", "web_bind", "0.0.0.0"),
        ("PROCESSOR_BATCH_SIZE", "batch_size", 1),
        ("PROCESSOR_BATCH_WAIT_MS", "batch_wait_ms", 0),
        ("PROCESSOR_CONTACT_CACHE_SIZE", "contact_cache_size", 0),
        ("PROCESSOR_CONTACT_CACHE_TTL", "contact_cache_ttl", 5),
        ("PROCESSOR_SESSION_TIMEOUT", "session_timeout", 6),
        ("PROCESSOR_FETCH_MAX_WAIT_MS", "fetch_max_wait_ms", 0),
        ("PROCESSOR_FETCH_MIN_BYTES", "fetch_min_bytes", 1),
        ("PROCESSOR_PRODUCER_LINGER_MS", "producer_linger_ms", 0),
        ("PROCESSOR_CONSUMER_THREAD", "consumer_thread", True),
    ],
)
def test_each_setting_is_read_from_its_variable(env: str, attr: str, expected: Any) -> None:
    settings = Settings.from_env({env: str(expected)})
    assert getattr(settings, attr) == expected
    assert type(getattr(settings, attr)) is type(expected)


@pytest.mark.parametrize(
    ("raw", "policy"),
    [
        ("flag", MismatchPolicy.FLAG),
        ("reject", MismatchPolicy.REJECT),
        ("ignore", MismatchPolicy.IGNORE),
        ("REJECT", MismatchPolicy.REJECT),
        ("Ignore", MismatchPolicy.IGNORE),
    ],
)
def test_total_mismatch_policy_by_name(raw: str, policy: MismatchPolicy) -> None:
    assert Settings.from_env({"PROCESSOR_TOTAL_MISMATCH": raw}).total_mismatch is policy


@pytest.mark.parametrize(("raw", "store"), [("memory", Store.MEMORY), ("RocksDB", Store.ROCKSDB)])
def test_store_by_name(raw: str, store: Store) -> None:
    assert Settings.from_env({"PROCESSOR_STORE": raw}).store is store


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("token", ("token",)),
        ("token,LoyaltyCard", ("token", "LoyaltyCard")),
        (" token , LoyaltyCard ,, ", ("token", "LoyaltyCard")),
        (",", ()),
    ],
)
def test_contact_id_params_are_a_comma_list(raw: str, expected: tuple[str, ...]) -> None:
    assert Settings.from_env({"PROCESSOR_CONTACT_ID_PARAMS": raw}).contact_id_params == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_create_topics_flag(raw: str, expected: bool) -> None:
    assert Settings.from_env({"PROCESSOR_CREATE_TOPICS": raw}).create_topics is expected


def test_empty_variable_means_the_default() -> None:
    assert Settings.from_env({"PROCESSOR_PARTITIONS": "", "PROCESSOR_STORE": ""}) == Settings()


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("PROCESSOR_PARTITIONS", "four"),
        ("PROCESSOR_PARTITIONS", "4.0"),
        ("PROCESSOR_WEB_PORT", "66a"),
        ("PROCESSOR_HISTORY_LIMIT", "1e3"),
        ("PROCESSOR_MAX_EVENT_BYTES", "1MB"),
        ("PROCESSOR_TOTAL_MISMATCH", "warn"),
        ("PROCESSOR_STORE", "redis"),
        ("PROCESSOR_CREATE_TOPICS", "maybe"),
    ],
)
def test_unreadable_value_is_a_config_error_naming_the_variable(env: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({env: raw})
    assert env in str(info.value)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("PROCESSOR_PARTITIONS", "0"),
        ("PROCESSOR_PARTITIONS", "-1"),
        ("PROCESSOR_HISTORY_LIMIT", "0"),
        ("PROCESSOR_MAX_DEPTH", "2"),
        ("PROCESSOR_BATCH_SIZE", "0"),
        ("PROCESSOR_BATCH_WAIT_MS", "-1"),
        ("PROCESSOR_SESSION_TIMEOUT", "5"),
        ("PROCESSOR_FETCH_MAX_WAIT_MS", "-1"),
        ("PROCESSOR_FETCH_MAX_WAIT_MS", "10001"),
        ("PROCESSOR_FETCH_MIN_BYTES", "0"),
        ("PROCESSOR_FETCH_MIN_BYTES", "1048577"),
        ("PROCESSOR_PRODUCER_LINGER_MS", "-1"),
        ("PROCESSOR_PRODUCER_LINGER_MS", "1001"),
        ("PROCESSOR_ROCKSDB_WRITE_MB_PER_S", "-1"),
        ("PROCESSOR_ROCKSDB_WRITE_MB_PER_S", "100001"),
    ],
)
def test_values_that_cannot_work_are_config_errors(env: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=env):
        Settings.from_env({env: raw})


def test_smallest_values_that_work() -> None:
    settings = Settings.from_env(
        {"PROCESSOR_PARTITIONS": "1", "PROCESSOR_HISTORY_LIMIT": "1", "PROCESSOR_MAX_DEPTH": "3"}
    )
    assert (settings.partitions, settings.history_limit, settings.max_depth) == (1, 1, 3)


def test_variables_that_are_not_ours_are_ignored() -> None:
    assert Settings.from_env({"HOME": "/root", "PROCESSOR_UNKNOWN": "x"}) == Settings()


def test_kafka_hosts() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": " k1:9092, ,k2:9093 "})
    assert settings.kafka_hosts == ["k1:9092", "k2:9093"]


def test_describe_lists_every_variable_with_its_default() -> None:
    rows = {env: default for env, default, _ in describe()}
    assert rows["PROCESSOR_PARTITIONS"] == "4"
    assert rows["PROCESSOR_TOTAL_MISMATCH"] == "flag"
    assert rows["PROCESSOR_CONTACT_ID_PARAMS"] == ""
    for role, (name, env) in ROLES.items():
        assert rows[env] == name, role


# --- topic names ------------------------------------------------------------------------------


def test_topic_names_default_to_the_contract() -> None:
    specs = Settings.from_env({}).topics()
    assert {role: spec.name for role, spec in specs.items()} == {
        role: name for role, (name, _) in ROLES.items()
    }


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_topic_name_is_overridable_by_its_variable(role: str) -> None:
    _, env = ROLES[role]
    specs = Settings.from_env({env: f"test-7.{role}"}).topics()
    assert specs[role].name == f"test-7.{role}"
    assert specs[role].env == env
    others = {r: s.name for r, s in specs.items() if r != role}
    assert others == {r: n for r, (n, _) in ROLES.items() if r != role}


def test_empty_topic_variable_keeps_the_contract_name() -> None:
    assert Settings.from_env({"TOPIC_CONTACTS": ""}).topics()["contacts"].name == "contacts"


def test_topics_take_partitions_and_replication_from_the_settings() -> None:
    specs = Settings.from_env(
        {"PROCESSOR_PARTITIONS": "6", "PROCESSOR_REPLICATION_FACTOR": "3"}
    ).topics()
    assert {(s.partitions, s.replication_factor) for s in specs.values()} == {(6, 3)}


def test_load_contract_reads_names_from_the_given_environment() -> None:
    specs = topics.load_contract({"TOPIC_ORDERS_DLQ": "dlq-x"}, partitions=2)
    assert specs["orders_dlq"].name == "dlq-x"
    assert specs["orders_events"].name == "orders.events"
    assert specs["orders_events"].partitions == 2


# --- the contract and its schemas -------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_schema_file_is_a_json_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert set(schema["required"]) <= set(schema["properties"])


def test_the_schema_directory_holds_the_four_schemas() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == [
        "contacts.schema.json",
        "orders.dlq.schema.json",
        "orders.events.schema.json",
        "orders.rfm.schema.json",
    ]


def test_every_topic_in_the_contract_has_name_key_config_and_a_schema() -> None:
    contract = json.loads((SCHEMA_DIR.parent / "contract.json").read_text(encoding="utf-8"))
    assert set(contract["topics"]) == set(ROLES)
    for role, spec in contract["topics"].items():
        assert isinstance(spec["name"], str) and spec["name"], role
        assert isinstance(spec["key"], str) and spec["key"], role
        assert isinstance(spec["config"], dict) and spec["config"], role
        assert spec["config"]["cleanup.policy"] in {"delete", "compact"}, role
        assert all(isinstance(v, str) for v in spec["config"].values()), role
        assert spec["env"] == ROLES[role][1]
        assert (SCHEMA_DIR.parent / spec["schema"]).is_file(), role


def test_topic_specs_load_their_schemas() -> None:
    for spec in topics.load_contract({}).values():
        assert spec.schema()["type"] == "object"


def test_contacts_are_compacted_and_the_rest_deleted() -> None:
    policies = {r: s.config["cleanup.policy"] for r, s in topics.load_contract({}).items()}
    assert policies.pop("contacts") == "compact"
    assert set(policies.values()) == {"delete"}


def schema(name: str) -> dict[str, Any]:
    return topics.load_schema(f"schemas/{name}.schema.json")


def test_events_schema_item_requires_the_item_fields() -> None:
    # Event types, statuses and reason codes: see test_contract.py.
    assert tuple(schema("orders.events")["$defs"]["item"]["required"]) == ITEM_FIELDS


def test_contacts_schema_names_the_known_fields() -> None:
    assert set(schema("contacts")["properties"]) == {ID, *KNOWN_FIELDS}


# --- partitioning -----------------------------------------------------------------------------

#: Kafka's own murmur2 test vectors (Java client, UtilsTest.testMurmur2), as signed ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("route", [partition_for, partition_of], ids=["cached", "uncached"])
@pytest.mark.parametrize("key", sorted(JAVA_MURMUR2))
@pytest.mark.parametrize("partitions", [1, 3, 4, 12, 100])
def test_partition_for_matches_the_java_client(
    route: Callable[[bytes, int], int], key: bytes, partitions: int
) -> None:
    # Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions
    java = (JAVA_MURMUR2[key] & 0x7FFFFFFF) % partitions
    assert route(key, partitions) == java
    assert route(key, partitions) == java  # again: from the cache, for partition_for


@given(st.binary(max_size=64))
def test_murmur2_is_aiokafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data) & 0xFFFFFFFF


@pytest.mark.parametrize(
    "key", [b"12345679", b"o-1", b"", "\u0437\u0430\u043a\u0430\u0437-7".encode(), b"\x00\xff"]
)
@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_partition_for_matches_aiokafka_default_partitioner(key: bytes, partitions: int) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert partition_for(key, partitions) == expected


def test_partition_for_spreads_keys() -> None:
    owners = {partition_for(f"order-{n}".encode(), 4) for n in range(100)}
    assert owners == {0, 1, 2, 3}
