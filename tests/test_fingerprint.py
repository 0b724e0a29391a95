from opsloop.fingerprint import label_fingerprint


def test_empty_label_set_is_the_fnv_offset_basis() -> None:
    assert int(label_fingerprint({}), 16) == 14695981039346656037


def test_fingerprint_matches_prometheus_common_model() -> None:
    # The pinned value from prometheus/common's model signature tests.
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    assert int(label_fingerprint(labels), 16) == 5799056148416392346


def test_label_order_does_not_matter_but_values_do() -> None:
    a = label_fingerprint({"alertname": "HighErrorRate", "service": "checkout"})
    b = label_fingerprint({"service": "checkout", "alertname": "HighErrorRate"})
    c = label_fingerprint({"service": "payments", "alertname": "HighErrorRate"})
    assert a == b != c
    assert len(a) == 16
