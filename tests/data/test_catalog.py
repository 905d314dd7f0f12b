import numpy as np
import pytest

from sessrec.data.catalog import IdMap, no_known_item, unknown_items
from sessrec.errors import SessrecError


def test_unknown_item_errors_name_five_ids_and_count_the_rest():
    ids = ["a", 2, "c", 4, "e", 6, 7]
    assert str(unknown_items(ids)) == "7 unknown item(s): 'a', 2, 'c', 4, 'e' and 2 more"
    assert str(unknown_items([42])) == "1 unknown item(s): 42"
    assert str(no_known_item(ids)) == "the session has no item known to the model (unknown: 'a', 2, 'c', 4, 'e' and 2 more)"
    assert str(no_known_item([])) == "the session has no items"


def test_numeric_ids_match_only_their_own_text():
    """An integer catalog takes 123 (Python or numpy) and the text "123", never other text int() reads as 123:
    leading zeros, a sign, underscores, spaces, other scripts' digits are other ids (README: matched exactly)."""
    m = IdMap("item", {123: 1, 42: 2, -7: 3, 0: 4}, [None, 123, 42, -7, 0], np.zeros(5, dtype=np.int64), None, True)
    for value, want in [(123, 1), (np.int64(123), 1), (np.uint64(42), 2), ("123", 1), ("42", 2), ("-7", 3), ("0", 4),
                        (123.0, 1), (np.float64(42.0), 2)]:  # a whole float is its integer, as prepare reads it
        assert m.lookup(value) == want, value
    for value in ["00123", "0123", "+42", "1_2_3", "123 ", " 123", "\u0661\u0662\u0663", "-0", "123\n", "", "12.0",
                  True, None, "9" * 5000, 123.5, float("nan"), float("inf")]:
        assert m.lookup(value) is None, repr(value)
    # a whole float from 2**53 on may stand for another integer: refused, for items and categorical values alike (a
    # REES46 category_id near 2e18 sent as a JSON number was a silent unknown value)
    for value in (2.0**53, -(2.0**60), np.float64(2.103807459595387724e18)):
        with pytest.raises(SessrecError, match=r"is a float beyond 2\*\*53, which cannot hold every integer id exactly"):
            m.lookup(value)
    text = IdMap("item", {"00123": 1, "123": 2}, [None, "00123", "123"], np.zeros(3, dtype=np.int64), None, False)
    assert (text.lookup("00123"), text.lookup("123"), text.lookup(123), text.lookup(np.int64(123))) == (1, 2, 2, 2)
    assert text.lookup("123 ") is None
    assert (text.lookup(123.0), text.lookup(np.float64(123.0))) == (2, 2)  # as the server reads it (QA helper-70)
    assert text.lookup(123.5) is None and text.lookup(2.0**60) is None
    # the errors say which text spells an id otherwise ('214575551.0' from a pandas float column, QA helper-61)
    for value in ["123.0", "00123", "+42", " 123", "1.23e2", "-7.000"]:
        want = int(float(value))
        assert m.written_otherwise(["nope", value]) == (f" ({value!r} is not how the catalog writes item {want}: its ids "
                                                        f"are integers, matched as written; give {want})")
    for values in (["12.5", "7", "1e999999999", "nan", "inf", "x"], [12.0, 99]):
        assert m.written_otherwise(values) == ""
    assert text.written_otherwise(["123.0"]) == ""


def test_a_value_that_is_no_id_is_an_error_not_an_unknown_id():
    """A list or dict in a session (a nested list by mistake) is refused in one line; in a text catalog it was a
    TypeError from inside a dict lookup, in an integer catalog a silent unknown id."""
    for numeric, table in ((True, {1: 1}), (False, {"a": 1})):
        m = IdMap("item", table, [None, *table], np.zeros(2, dtype=np.int64), None, numeric)
        for value in ([1], {"a": 1}, ("a",), {1}):
            with pytest.raises(SessrecError, match=r"is not an original value \(text or a number\)"):
                m.lookup(value)
        assert m.lookup(None) is None
