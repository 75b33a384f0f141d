"""Typed accounting: LossReason, DeliveryReport and the statistics() keys they make."""

from __future__ import annotations

import threading

from agentsight_otel.delivery.report import Accounting, DeliveryReport, LossReason

#: The statistics() counters before the accounting was typed: callers read these keys.
COUNTER_KEYS = {
    "submitted",
    "delivered",
    "rejected",
    "dropped_queue_full",
    "dropped_after_retries",
    "dropped_at_shutdown",
    "spool_dropped",
    "quarantined",
    "spool_write_failures",
    "invalid",
}


def test_the_counters_keep_their_statistics_names() -> None:
    accounting = Accounting(threading.Condition())
    assert set(accounting.counters()) == COUNTER_KEYS
    assert {reason.value for reason in LossReason} <= COUNTER_KEYS


def test_each_loss_is_counted_under_its_reason() -> None:
    accounting = Accounting(threading.Condition())
    accounting.count_submitted(10)
    accounting.count_delivered(4)
    accounting.count_lost(LossReason.QUEUE_FULL, 3)
    accounting.count_lost(LossReason.REJECTED, 2)
    accounting.count_lost(LossReason.INVALID, 0)
    accounting.count_spool_write_failure()
    counts = accounting.counters()
    assert counts["submitted"] == 10
    assert counts["delivered"] == 4
    assert counts["dropped_queue_full"] == 3
    assert counts["rejected"] == 2
    assert counts["invalid"] == 0
    assert counts["spool_write_failures"] == 1


def test_a_report_is_complete_only_when_everything_was_delivered() -> None:
    assert DeliveryReport(delivered=[0, 1]).complete
    assert not DeliveryReport(delivered=[0], failed=[1]).complete
    assert not DeliveryReport(rejected=[0]).complete
