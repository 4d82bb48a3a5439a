"""Streaming inference: events consumed from a stream, scored in micro-batches, one output record per event.

``mlops-ops stream`` (or :class:`~mlops_ops.streaming.scorer.StreamScorer` from Python) is a long-running
consumer of a Redis stream in a consumer group; several consumers of one group share the stream's events. Each
batch (up to ``batch_size`` events or ``block_ms`` milliseconds of waiting) is checked against the request model
(the project's :class:`~mlops_ops.serving.PredictionRequest` subclass, or one built from the model's signature),
joined with online features when a feature service is named, prepared by the model spec's function and scored
by the champion, pinned and verified as the prediction API pins and verifies it (the same trust rules, compiled
trees and hot reload). Delivery is at least once and the output idempotent by event:

- an event is acknowledged in the same atomic step that writes its output record (a Lua script on the server),
  and only if it was still pending: a consumer that died mid-batch leaves its events pending, another consumer
  claims them after ``claim_idle_ms``, and of two consumers that scored the same event only the first to commit
  writes a record;
- an event that cannot be scored (a missing or mistyped field, NaN, an oversized payload, no online features
  for its entity) goes to the dead-letter stream with the reason and never blocks the others.

The seams: :mod:`.events` (an entry in, a request or a refusal out), :mod:`.redis_streams` (the stream engine
behind :class:`~mlops_ops.streaming.redis_streams.StreamSource`), :mod:`.scorer` (the loop, hot reload,
metrics) and :mod:`.compaction` (an interval's output records as batch scoring's prediction partition, which
monitoring reads: :class:`~mlops_ops.operators.streaming.CompactStreamOperator`).
"""
