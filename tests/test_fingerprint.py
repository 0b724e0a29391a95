import pytest

from opsloop.fingerprint import label_fingerprint, label_fingerprints


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


def test_a_batch_fingerprints_each_label_set_bit_for_bit() -> None:
    # Enough unseen label sets to take the vectorised path, of uneven lengths and non-ASCII.
    sets = [{"alertname": "PodDown", "pod": f"pod-{i}" * (i % 7), "zone": "é€" * (i % 3)}
            for i in range(300)] + [{}, {"name": "garland, briggs", "fear": "love is not enough"}]
    expected = [label_fingerprint(labels) for labels in sets]
    assert label_fingerprints(sets) == expected
    assert label_fingerprints(sets) == expected  # the second time from what was remembered
    assert int(label_fingerprints(sets)[-1], 16) == 5799056148416392346


def test_a_small_batch_and_a_reordered_label_set_agree_with_the_single_fingerprint() -> None:
    a = {"service": "checkout", "alertname": "HighErrorRate"}
    b = {"alertname": "HighErrorRate", "service": "checkout"}
    assert label_fingerprints([a, b]) == [label_fingerprint(a)] * 2


def test_a_label_set_holding_the_separator_character_is_not_mistaken_for_another() -> None:
    # "ÿ" separates pairs in the remembered text of a label set; these two sets have the same
    # text but different bytes (Prometheus hashes a 0xff byte, not the UTF-8 of "ÿ").
    plain = {"a": "b", "c": ""}
    tricky = {"a": "bÿcÿ"}
    for first, second in ((plain, tricky), (tricky, plain)):
        label_fingerprints([first] * 40)  # remembered (the vectorised path)
        assert label_fingerprints([second]) == [label_fingerprint(second)]
    assert label_fingerprint(plain) != label_fingerprint(tricky)
    assert label_fingerprints([{"ÿ": "ÿ"}]) == [label_fingerprint({"ÿ": "ÿ"})]


def test_a_label_set_that_cannot_be_encoded_raises_as_the_single_fingerprint_does() -> None:
    bad = {"alertname": "\ud800"}
    with pytest.raises(UnicodeEncodeError):
        label_fingerprint(bad)
    with pytest.raises(UnicodeEncodeError):
        label_fingerprints([bad])
    with pytest.raises(UnicodeEncodeError):
        label_fingerprints([{"a": str(i)} for i in range(40)] + [bad])
