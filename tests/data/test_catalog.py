from sessrec.data.catalog import no_known_item, unknown_items


def test_unknown_item_errors_name_five_ids_and_count_the_rest():
    ids = ["a", 2, "c", 4, "e", 6, 7]
    assert str(unknown_items(ids)) == "7 unknown item(s): 'a', 2, 'c', 4, 'e' and 2 more"
    assert str(unknown_items([42])) == "1 unknown item(s): 42"
    assert str(no_known_item(ids)) == "the session has no item known to the model (unknown: 'a', 2, 'c', 4, 'e' and 2 more)"
    assert str(no_known_item([])) == "the session has no items"
