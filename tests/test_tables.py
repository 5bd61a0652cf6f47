"""The plain-text table every command prints through."""

from tora.tables import aligned_table


def test_columns_pad_to_the_widest_cell_labels_left_numbers_right() -> None:
    table = aligned_table(["method", "hv"], [["LS", "0.2468"], ["DiME", "0.47"]], left=1)
    assert table.splitlines() == [
        "method      hv",
        "LS      0.2468",
        "DiME      0.47",
    ]
    assert aligned_table(["a"], [["bbb"]]).splitlines() == ["  a", "bbb"]
