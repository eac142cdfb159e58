"""Order-event stream processor: Generate-event orders from Kafka to order state.

Module map (one concern each):
    settings     every knob, read from the environment once
    reasons      the stable set of dead-letter reason codes
    errors       the exception tree
    codec        orjson encoding with Decimal as strings; the Faust codec
    immutable    the value objects' decorator: frozen for mypy, plain slotted at run time
    events       raw bytes -> OrderEvent (parsing and validation, pure)
    contacts     contacts and event identification (pure)
    directory    the contact directory in Redis (I/O)
    orders       the order state machine: apply(order, event) -> transition (pure)
    deadletters  dead-letter records (pure)
    routing      which partition owns an order: murmur2, as Kafka's clients (pure)
    table        the orders table read and written a batch at a time; its RocksDB store
    outbox       a batch's output records, sent as whole Kafka record batches
    transport    Faust's Kafka transport: bounded, batched fetches; a cheap per-message hand-over
    streams      Faust's stream taken a batch at a time, acked when the batch is done
    app          builds the Faust app: topics, table, agents, views
    agents       the thin agents that wire topics, table and Redis to the pure functions
    metrics      the worker's counters (dashboard, /api/stats)
    web          the worker's web views
    admin        topic creation from the contract (confluent-kafka admin)
    producer     producing Generate events, partitioned as the contract says (confluent-kafka)
    cli          the ``processor`` command
"""

__version__ = "0.1.0"
