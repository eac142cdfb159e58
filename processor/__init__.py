"""Order-event stream processor: Generate-event orders from Kafka to order state.

Module map (one concern each):
    settings     every knob, read from the environment once
    reasons      the stable set of dead-letter reason codes
    errors       the exception tree
    codec        orjson encoding with Decimal as strings; the Faust codec
    events       raw bytes -> OrderEvent (parsing and validation, pure)
    contacts     contacts and event identification (pure)
    directory    the contact directory in Redis (I/O)
    orders       the order state machine: apply(order, event) -> transition (pure)
    deadletters  dead-letter records (pure)
    app          builds the Faust app: topics, table, agents, views
    agents       the thin agents that wire topics, table and Redis to the pure functions
    web          the worker's web views
    admin        topic creation from the contract (confluent-kafka admin)
    cli          the ``processor`` command
"""

__version__ = "0.1.0"
